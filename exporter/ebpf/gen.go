package ebpf

//go:generate go tool -modfile=../../tools/go.mod bpf2go -cc clang-14 -target bpfel -type event -type open_info -type go_binary capture capture.bpf.c -- -O2 -g -Wall -Werror -mcpu=v3

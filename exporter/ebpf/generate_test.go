package ebpf

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
)

// TestGeneratedObjectsUpToDate rebuilds the BPF object and its Go binding
// from capture.bpf.c, as go generate does, and requires the committed files
// to be byte-identical.
func TestGeneratedObjectsUpToDate(t *testing.T) {
	testenv.Tool(t, "clang-14")
	if _, err := os.Stat("/usr/include/bpf/bpf_helpers.h"); err != nil {
		if testenv.Required() {
			t.Fatal("libbpf headers missing (install libbpf-dev)")
		}
		t.Skip("libbpf headers missing (install libbpf-dev)")
	}
	dir := t.TempDir()
	for _, f := range []string{"capture.bpf.c", "vmlinux.h"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// bpf2go at the version tools/go.mod pins, run outside the module.
	root := testenv.RepoRoot(t)
	bpf2go := filepath.Join(dir, "bpf2go")
	build := exec.Command("go", "build", "-modfile=tools/go.mod", "-o", bpf2go, "github.com/cilium/ebpf/cmd/bpf2go")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building bpf2go: %v\n%s", err, out)
	}
	cmd := exec.Command(bpf2go, "-cc", "clang-14", "-target", "bpfel",
		"-type", "event", "-type", "open_info", "-type", "go_binary", "capture", "capture.bpf.c", "--",
		"-O2", "-g", "-Wall", "-Werror", "-mcpu=v3")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOPACKAGE=ebpf")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bpf2go: %v\n%s", err, out)
	}
	for _, f := range []string{"capture_bpfel.o", "capture_bpfel.go"} {
		want, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from what capture.bpf.c compiles to; run go generate in exporter/ebpf", f)
		}
	}
}

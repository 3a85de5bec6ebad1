package ebpf

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/open-autoglm/autoglm-monitor/exporter/traffic"
	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
)

func TestGoMinor(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want int
		ok   bool
	}{
		{"go1.26.8", 26, true},
		{"go1.17", 17, true},
		{"go1.23rc1", 23, true},
		{"go1.24-X:boringcrypto", 24, true},
		{"devel go1.27-abc", 0, false},
		{"", 0, false},
	} {
		got, ok := goMinor(tc.v)
		if got != tc.want || ok != tc.ok {
			t.Errorf("goMinor(%q) = %d, %v; want %d, %v", tc.v, got, ok, tc.want, tc.ok)
		}
	}
}

func TestRetOffsets(t *testing.T) {
	// mov rax, rbx; ret; nop; ret; int3 padding
	code := []byte{0x48, 0x89, 0xd8, 0xc3, 0x90, 0xc3, 0xcc, 0xcc}
	got, err := retOffsets(code)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != 3 || got[1] != 5 {
		t.Errorf("RET offsets %v, want [3 5]", got)
	}
	if _, err := retOffsets([]byte{0x48, 0x89, 0xd8}); err == nil {
		t.Error("code without RET accepted")
	}
}

// TestInspectGoBinary builds the tests' Go TLS server twice, as is and
// stripped (-s -w). Both yield the two functions with the same RET
// instructions; the layout read from DWARF equals the layout assumed for
// binaries without it, and only the symbol table gives the itab.
func TestInspectGoBinary(t *testing.T) {
	build := func(ldflags string) string {
		out := filepath.Join(t.TempDir(), "tlsserver")
		cmd := exec.Command("go", "build", "-ldflags="+ldflags, "-o", out, "./exporter/testdata/tlsserver")
		cmd.Dir = testenv.RepoRoot(t)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, b)
		}
		return out
	}
	full, err := inspectGo(build(""))
	if err != nil {
		t.Fatal(err)
	}
	stripped, err := inspectGo(build("-s -w"))
	if err != nil {
		t.Fatal(err)
	}
	if full.layoutSource != "dwarf" || stripped.layoutSource != "go version" {
		t.Fatalf("layouts from %s and %s, want dwarf and go version", full.layoutSource, stripped.layoutSource)
	}
	want := knownGoLayout
	want.TcpConnItab, want.FuncRead, want.FuncWrite = full.layout.TcpConnItab, full.read.addr, full.write.addr
	if full.layout != want {
		t.Errorf("DWARF layout %+v differs from the known layout %+v", full.layout, want)
	}
	if full.layout.TcpConnItab == 0 || stripped.layout.TcpConnItab != 0 {
		t.Errorf("itab %#x (symbol table) and %#x (stripped), want it found only with the symbol table", full.layout.TcpConnItab, stripped.layout.TcpConnItab)
	}
	for i, fn := range []goFunc{full.read, full.write} {
		st := []goFunc{stripped.read, stripped.write}[i]
		if len(fn.rets) == 0 || fn.offset == 0 || fmt.Sprint(fn.rets) != fmt.Sprint(st.rets) {
			t.Errorf("%s: offset %#x size %d RETs %v; stripped: size %d RETs %v", fn.name, fn.offset, fn.size, fn.rets, st.size, st.rets)
		}
	}
	if _, err := inspectGo("/bin/sh"); err != errNotGo {
		t.Errorf("inspecting /bin/sh: %v, want errNotGo", err)
	}
}

func TestParseNetTCP(t *testing.T) {
	f := filepath.Join(t.TempDir(), "tcp")
	const table = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1234 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F40 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 5678 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:1F41 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 999 1 0000000000000000 100 0 0 10 0
`
	if err := os.WriteFile(f, []byte(table), 0o600); err != nil {
		t.Fatal(err)
	}
	fh, err := os.Open(f)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	got := map[uint64]bool{}
	if err := parseNetTCP(fh, []uint16{8000}, got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[1234] || !got[5678] {
		t.Errorf("inodes %v, want 1234 and 5678 (port 8000 listening and connected)", got)
	}
}

// boringServer stands in for Envoy: a server whose binary carries
// BoringSSL (named by its version string, as BoringSSL's OpenSSL_version
// returns it) rather than mapping an OpenSSL library.
const boringServer = `
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
const char *const version = "BoringSSL";
int main(int argc, char **argv) {
	int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1])), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 8)) return 1;
	printf("ready %s\n", version);
	fflush(stdout);
	for (;;) {
		char b[512];
		int c = accept(s, 0, 0);
		if (c >= 0 && read(c, b, sizeof b) >= 0) close(c);
	}
}
`

// TestStaticBoringSSLReported checks that a server carrying BoringSSL in
// its executable is found, named in the metrics as unsupported, and logged.
func TestStaticBoringSSLReported(t *testing.T) {
	testenv.Root(t)
	cc := testenv.Tool(t, "clang-14", "cc")
	dir := t.TempDir()
	src, bin := filepath.Join(dir, "boring.c"), filepath.Join(dir, "envoy")
	if err := os.WriteFile(src, []byte(boringServer), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(cc, "-O1", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("compiling the stand-in: %v\n%s", err, out)
	}
	if got := staticTLS(bin); got != libBoringSSL {
		t.Fatalf("staticTLS = %q, want %q", got, libBoringSSL)
	}
	port := testenv.FreePort(t)
	cmd := exec.Command(bin, strconv.Itoa(port))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || !strings.HasPrefix(line, "ready") {
		t.Fatalf("stand-in: %q, %v", line, err)
	}
	var logs testenv.LogBuffer
	src2, err := New(Options{Ports: []uint16{uint16(port)}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer src2.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = src2.Run(ctx, func(*traffic.Event) {}) }()
	want := `
# HELP autoglm_exporter_tls_processes Processes serving an observed port, by TLS library found in them and whether its plaintext is probed (attached) or cannot be (unsupported).
# TYPE autoglm_exporter_tls_processes gauge
autoglm_exporter_tls_processes{library="boringssl",status="unsupported"} 1
`
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := testutil.CollectAndCompare(src2.Collector(), strings.NewReader(want), "autoglm_exporter_tls_processes")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "library=boringssl") || !strings.Contains(logs.String(), bin) {
		t.Errorf("no log line naming BoringSSL and %s:\n%s", bin, logs.String())
	}
}

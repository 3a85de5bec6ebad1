package ebpf

import (
	"strings"
	"testing"
)

func TestPreflightMessage(t *testing.T) {
	ok := checks{UID: 0, Privileged: true, BTF: true, Kernel: "6.18.0", KernelOK: true, Tracefs: true}
	cases := []struct {
		name   string
		mutate func(*checks)
		want   []string // substrings, in order
		absent []string
	}{
		{name: "all present", mutate: func(*checks) {}},
		{
			name:   "not privileged",
			mutate: func(c *checks) { c.UID, c.Privileged = 1000, false },
			want:   []string{"uid 1000", "CAP_BPF+CAP_PERFMON", "run as root or grant cap_bpf,cap_perfmon,cap_sys_admin", "or use exporter.source: accesslog"},
			absent: []string{"BTF", "kernel", "tracefs"},
		},
		{
			name:   "no BTF",
			mutate: func(c *checks) { c.BTF = false },
			want:   []string{"no kernel BTF at /sys/kernel/btf/vmlinux", "CONFIG_DEBUG_INFO_BTF=y", "exporter.source: accesslog"},
			absent: []string{"privileges"},
		},
		{
			name:   "old kernel",
			mutate: func(c *checks) { c.Kernel, c.KernelOK = "5.4.0-150-generic", false },
			want:   []string{`kernel "5.4.0-150-generic" is too old`, "Linux 5.11 or newer", "exporter.source: accesslog"},
		},
		{
			name: "tracefs missing",
			mutate: func(c *checks) {
				c.Tracefs, c.TracefsProblem = false, "tracefs is not mounted: run mount -t tracefs nodev /sys/kernel/tracing"
			},
			want: []string{"mount -t tracefs nodev /sys/kernel/tracing", "exporter.source: accesslog"},
		},
		{
			name: "everything missing in one line",
			mutate: func(c *checks) {
				*c = checks{UID: 1000, Kernel: "4.19.0", TracefsProblem: "tracefs is not mounted: run mount -t tracefs nodev /sys/kernel/tracing"}
			},
			want: []string{"ebpf capture unavailable: missing privileges", "; no kernel BTF", "; kernel \"4.19.0\" is too old", "; tracefs is not mounted", "; or use exporter.source: accesslog"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mutate(&c)
			err := c.message()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("message spans lines: %q", msg)
			}
			rest := msg
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("message %q lacks %q (in order)", msg, w)
				}
				rest = rest[i+len(w):]
			}
			for _, a := range tc.absent {
				if strings.Contains(msg, a) {
					t.Errorf("message %q mentions %q, which is fine", msg, a)
				}
			}
		})
	}
}

func TestKernelAtLeast(t *testing.T) {
	cases := []struct {
		release string
		want    bool
	}{
		{"6.18.44-fc-v782", true},
		{"5.8.0", true},
		{"5.15.0-91-generic", true},
		{"5.7.19", false},
		{"4.19.0-25-amd64", false},
		{"5.10", true},
		{"5.8-rc1", true},
		{"garbage", false},
		{"", false},
	}
	for _, tc := range cases {
		if got := kernelAtLeast(tc.release, 5, 8); got != tc.want {
			t.Errorf("kernelAtLeast(%q, 5, 8) = %v, want %v", tc.release, got, tc.want)
		}
	}
}

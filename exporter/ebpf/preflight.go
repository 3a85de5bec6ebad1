package ebpf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

const (
	btfPath        = "/sys/kernel/btf/vmlinux"
	tracefsMount   = "/sys/kernel/tracing"
	debugfsTracing = "/sys/kernel/debug/tracing"
	// The BPF ring buffer arrived in Linux 5.8, task local storage for
	// tracing programs (in-flight call state) in 5.11.
	minKernelMajor, minKernelMinor = 5, 11
)

// checks is what Preflight found on this host; message turns it into advice.
type checks struct {
	UID int
	// Privileged is true with CAP_SYS_ADMIN, or with both CAP_BPF and CAP_PERFMON.
	Privileged bool
	BTF        bool
	Kernel     string // uname release
	KernelOK   bool
	// Tracefs is true when syscall tracepoints are visible in a mounted tracefs.
	Tracefs bool
	// TracefsProblem explains why Tracefs is false.
	TracefsProblem string
	// Arch is the machine (GOARCH): the programs read x86-64 registers.
	Arch string
}

// message returns nil when every check passed, else one error naming all
// that is missing and how to fix it.
func (c checks) message() error {
	var missing []string
	if !c.Privileged {
		missing = append(missing, fmt.Sprintf("missing privileges (uid %d has neither CAP_SYS_ADMIN nor CAP_BPF+CAP_PERFMON): run as root or grant cap_bpf,cap_perfmon,cap_sys_admin", c.UID))
	}
	if !c.BTF {
		missing = append(missing, fmt.Sprintf("no kernel BTF at %s: use a kernel built with CONFIG_DEBUG_INFO_BTF=y", btfPath))
	}
	if !c.KernelOK {
		missing = append(missing, fmt.Sprintf("kernel %q is too old: need Linux %d.%d or newer (BPF ring buffer, task local storage)", c.Kernel, minKernelMajor, minKernelMinor))
	}
	if !c.Tracefs {
		missing = append(missing, c.TracefsProblem)
	}
	if c.Arch != "" && c.Arch != "amd64" {
		missing = append(missing, fmt.Sprintf("the eBPF programs support x86-64 only, this is %s", c.Arch))
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("ebpf capture unavailable: %s; or use exporter.source: accesslog", strings.Join(missing, "; "))
}

// Preflight checks that this host can run the eBPF source, mounting tracefs
// when it is missing and we may. It returns one error naming everything that
// is missing, how to fix it, and the access-log alternative.
func Preflight() error {
	c := checks{UID: os.Geteuid(), Privileged: privileged(), Arch: runtime.GOARCH}
	_, err := os.Stat(btfPath)
	c.BTF = err == nil
	c.Kernel, c.KernelOK = kernelRelease()
	c.Tracefs, c.TracefsProblem = ensureTracefs(c.Privileged)
	return c.message()
}

func privileged() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	has := func(capability uint) bool { return data[capability/32].Effective&(1<<(capability%32)) != 0 }
	return has(unix.CAP_SYS_ADMIN) || (has(unix.CAP_BPF) && has(unix.CAP_PERFMON))
}

func kernelRelease() (string, bool) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown", false
	}
	release := unix.ByteSliceToString(u.Release[:])
	return release, kernelAtLeast(release, minKernelMajor, minKernelMinor)
}

func kernelAtLeast(release string, major, minor int) bool {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return false
	}
	maj, err := strconv.Atoi(parts[0])
	if err != nil {
		return false
	}
	minorDigits := parts[1]
	if i := strings.IndexFunc(minorDigits, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		minorDigits = minorDigits[:i] // "8-rc1"
	}
	mnr, err := strconv.Atoi(minorDigits)
	if err != nil {
		return false
	}
	return maj > major || (maj == major && mnr >= minor)
}

func syscallTracepoints() bool {
	for _, dir := range []string{tracefsMount, debugfsTracing} {
		if _, err := os.Stat(filepath.Join(dir, "events", "syscalls", "sys_enter_read")); err == nil {
			return true
		}
	}
	return false
}

// ensureTracefs mounts tracefs at its canonical place when it is missing;
// hosts often do not mount it at boot.
func ensureTracefs(privileged bool) (bool, string) {
	if syscallTracepoints() {
		return true, ""
	}
	var st unix.Statfs_t
	mounted := unix.Statfs(tracefsMount, &st) == nil && st.Type == unix.TRACEFS_MAGIC
	switch {
	case mounted && !privileged:
		return false, "syscall tracepoints in " + tracefsMount + " are not readable without the privileges above"
	case mounted:
		return false, "syscall tracepoints are missing from " + tracefsMount + ": use a kernel built with CONFIG_FTRACE_SYSCALLS=y"
	}
	fix := "mount -t tracefs nodev " + tracefsMount
	if !privileged {
		return false, "tracefs is not mounted: run " + fix
	}
	if err := unix.Mount("nodev", tracefsMount, "tracefs", 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
		return false, fmt.Sprintf("tracefs is not mounted and mounting it failed (%v): run %s", err, fix)
	}
	if !syscallTracepoints() {
		return false, "syscall tracepoints are missing from " + tracefsMount + ": use a kernel built with CONFIG_FTRACE_SYSCALLS=y"
	}
	return true, ""
}

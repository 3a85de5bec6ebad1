package workload

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// procInfo is what identifies a server process, read once per process.
type procInfo struct {
	comm, exe string
	netns     uint64 // inode of its network namespace, 0 if unreadable
	cgroup    Cgroup
}

// procFS reads /proc (or a copy of its layout in tests).
type procFS struct{ root string }

func (p procFS) path(pid uint32, name string) string {
	return filepath.Join(p.root, strconv.FormatUint(uint64(pid), 10), name)
}

// start is the process's start time in clock ticks after boot (field 22 of
// /proc/<pid>/stat). With the pid it names one process for the life of the
// machine, so a reused pid is never taken for the process it replaced.
func (p procFS) start(pid uint32) (uint64, error) {
	b, err := os.ReadFile(p.path(pid, "stat"))
	if err != nil {
		return 0, err
	}
	// comm (field 2) may contain spaces and parentheses; fields resume after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command field", pid)
	}
	fields := strings.Fields(string(b[i+1:]))
	const startField = 22 - 3 // fields[0] is field 3 (state)
	if len(fields) <= startField {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields, want at least 22", pid, len(fields)+2)
	}
	v, err := strconv.ParseUint(fields[startField], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: start time: %w", pid, err)
	}
	return v, nil
}

// info reads the process's name, executable, network namespace and cgroup.
// Only the name is required: the others need ptrace-level access to the
// process (exe, ns/net) or may be missing, and identity degrades without them.
func (p procFS) info(pid uint32) (procInfo, error) {
	comm, err := os.ReadFile(p.path(pid, "comm"))
	if err != nil {
		return procInfo{}, err
	}
	info := procInfo{comm: strings.TrimSuffix(string(comm), "\n")}
	if exe, err := os.Readlink(p.path(pid, "exe")); err == nil {
		info.exe = strings.TrimSuffix(exe, " (deleted)")
	}
	info.netns = p.netns(pid)
	if b, err := os.ReadFile(p.path(pid, "cgroup")); err == nil {
		if cg, err := ParseCgroup(b); err == nil {
			info.cgroup = cg
		}
	}
	return info, nil
}

// netns is the inode of the network namespace of pid ("self" for the exporter).
func (p procFS) netns(pid uint32) uint64 {
	return nsInode(p.path(pid, "ns/net"))
}

func nsInode(link string) uint64 {
	target, err := os.Readlink(link)
	if err != nil {
		return 0
	}
	// "net:[4026531840]"
	s, ok := strings.CutPrefix(target, "net:[")
	if !ok {
		return 0
	}
	v, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64)
	if err != nil {
		return 0
	}
	return v
}

// hostNetNS is the network namespace of PID 1: the host's when the exporter
// runs in the host PID namespace, whatever network namespace it runs in itself.
func (p procFS) hostNetNS() uint64 {
	if ino := p.netns(1); ino != 0 {
		return ino
	}
	return nsInode(filepath.Join(p.root, "self/ns/net"))
}

// processName is the service name of a process without a configured one: its
// command name, or the executable's base name where comm was cut at 15 bytes.
func (i procInfo) processName() string {
	base := filepath.Base(i.exe)
	if len(i.comm) >= 15 && i.exe != "" && strings.HasPrefix(base, i.comm) {
		return base
	}
	if i.comm == "" {
		return base
	}
	return i.comm
}

// netnsNames maps network namespace inodes to the names given to them by
// `ip netns add` (bind mounts under /run/netns). Unnamed namespaces keep
// their inode number.
type netnsNames struct {
	dirs    []string
	names   map[uint64]string
	scanned time.Time
}

func (n *netnsNames) name(ino uint64, now time.Time) string {
	if name, ok := n.names[ino]; ok {
		return name
	}
	if now.Sub(n.scanned) >= time.Second {
		n.scan(now)
		if name, ok := n.names[ino]; ok {
			return name
		}
	}
	return strconv.FormatUint(ino, 10)
}

func (n *netnsNames) scan(now time.Time) {
	n.scanned = now
	n.names = make(map[uint64]string, len(n.names))
	for _, dir := range n.dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			var st syscall.Stat_t
			if err := syscall.Stat(filepath.Join(dir, e.Name()), &st); err != nil {
				continue
			}
			if _, dup := n.names[st.Ino]; !dup {
				n.names[st.Ino] = e.Name()
			}
		}
	}
}

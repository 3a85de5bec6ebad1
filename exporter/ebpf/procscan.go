package ebpf

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
)

// procRoot is where /proc is mounted (the host's, in the host pid namespace).
const procRoot = "/proc"

// portSockets returns the inodes of the TCP sockets (IPv4 and IPv6, any
// state) whose local port is one of ports, from /proc/net/tcp{,6}.
func portSockets(ports []uint16) (map[uint64]bool, error) {
	inodes := map[uint64]bool{}
	var errs []error
	for _, name := range []string{"tcp", "tcp6"} {
		f, err := os.Open(procRoot + "/net/" + name)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
			continue
		}
		err = parseNetTCP(f, ports, inodes)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s/net/%s: %w", procRoot, name, err))
		}
	}
	return inodes, errors.Join(errs...)
}

// parseNetTCP adds the inodes of the lines of a /proc/net/tcp file whose
// local port is one of ports.
func parseNetTCP(f *os.File, ports []uint16, inodes map[uint64]bool) error {
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 {
			continue
		}
		_, port, ok := strings.Cut(fields[1], ":")
		if !ok {
			continue
		}
		p, err := strconv.ParseUint(port, 16, 16)
		if err != nil || !slices.Contains(ports, uint16(p)) {
			continue
		}
		ino, err := strconv.ParseUint(fields[9], 10, 64)
		if err != nil || ino == 0 {
			continue
		}
		inodes[ino] = true
	}
	return sc.Err()
}

// portOwners returns the processes holding a TCP socket on one of ports
// (listening or connected).
func portOwners(ports []uint16) ([]uint32, error) {
	inodes, err := portSockets(ports)
	if len(inodes) == 0 {
		return nil, err
	}
	dirs, derr := os.ReadDir(procRoot)
	if derr != nil {
		return nil, errors.Join(err, derr)
	}
	var owners []uint32
	for _, d := range dirs {
		pid, perr := strconv.ParseUint(d.Name(), 10, 32)
		if perr != nil {
			continue
		}
		if ownsSocket(uint32(pid), inodes) {
			owners = append(owners, uint32(pid))
		}
	}
	return owners, err
}

// ownsSocket reports whether pid has an fd on one of the socket inodes.
func ownsSocket(pid uint32, inodes map[uint64]bool) bool {
	dir := procRoot + "/" + strconv.FormatUint(uint64(pid), 10) + "/fd"
	fds, err := os.ReadDir(dir)
	if err != nil {
		return false // gone, or a kernel thread
	}
	for _, fd := range fds {
		target, err := os.Readlink(dir + "/" + fd.Name())
		if err != nil {
			continue
		}
		rest, ok := strings.CutPrefix(target, "socket:[")
		if !ok {
			continue
		}
		ino, err := strconv.ParseUint(strings.TrimSuffix(rest, "]"), 10, 64)
		if err == nil && inodes[ino] {
			return true
		}
	}
	return false
}

// mapping is one file mapped into a process.
type mapping struct {
	path string
	// dev and inode identify the file whatever path a process sees it by.
	dev   string
	inode uint64
}

// mappedFiles returns the distinct files mapped into pid, from /proc/<pid>/maps.
func mappedFiles(pid uint32) ([]mapping, error) {
	raw, err := os.ReadFile(procRoot + "/" + strconv.FormatUint(uint64(pid), 10) + "/maps")
	if err != nil {
		return nil, err
	}
	var out []mapping
	seen := map[string]bool{}
	for line := range bytes.Lines(raw) {
		// address perms offset dev inode path
		f := strings.Fields(string(line))
		if len(f) < 6 || !strings.HasPrefix(f[5], "/") {
			continue
		}
		ino, err := strconv.ParseUint(f[4], 10, 64)
		if err != nil || ino == 0 {
			continue
		}
		key := f[3] + ":" + f[4]
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, mapping{path: strings.Join(f[5:], " "), dev: f[3], inode: ino})
	}
	return out, nil
}

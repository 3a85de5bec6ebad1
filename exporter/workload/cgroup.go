package workload

import (
	"bytes"
	"fmt"
	"strings"
)

// Container runtimes a cgroup path can name.
const (
	RuntimeDocker     = "docker"
	RuntimeContainerd = "containerd"
	RuntimeCRIO       = "cri-o"
	RuntimePodman     = "podman"
)

// Cgroup is what the cgroup membership of a process (/proc/<pid>/cgroup)
// says about where it runs.
type Cgroup struct {
	// Path is the cgroup path the other fields were read from.
	Path string
	// Runtime is the container runtime when the path names it ("" for the
	// cgroupfs layouts, where only the ID is written).
	Runtime string
	// ContainerID is the 64-hex-digit container ID, "" outside a container.
	ContainerID string
	// PodUID is the Kubernetes pod UID (with dashes), "" outside Kubernetes.
	PodUID string
	// Unit is the innermost systemd service unit ("vllm.service"), if any.
	Unit string
}

// ParseCgroup reads the content of /proc/<pid>/cgroup: cgroup v2 ("0::/path"),
// v1 (one "id:controllers:/path" line per hierarchy) or both (hybrid). The
// layouts understood are those of the container runtimes with either cgroup
// driver:
//
//	cgroupfs  /docker/<id>, /kubepods[/<qos>]/pod<uid>/<id>, .../pod<uid>/crio-<id>
//	systemd   .../docker-<id>.scope, cri-containerd-<id>.scope, crio-<id>.scope, libpod-<id>.scope
//	          under kubepods[-<qos>]-pod<uid_with_underscores>.slice
//
// Paths relative to a cgroup namespace ("/../../pod<uid>/<id>", as a
// containerised reader sees other containers) work the same. The line that
// names a container wins, then one that names a pod, then the unified
// hierarchy's line.
func ParseCgroup(b []byte) (Cgroup, error) {
	var best Cgroup
	rank := -1
	for i, line := range bytes.Split(b, []byte{'\n'}) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		parts := strings.SplitN(string(line), ":", 3)
		if len(parts) != 3 || parts[0] == "" || !strings.HasPrefix(parts[2], "/") {
			return Cgroup{}, fmt.Errorf("cgroup line %d: want hierarchy-id:controllers:/path, got %q", i+1, truncate(string(line), 120))
		}
		c := parsePath(parts[2])
		r := 0
		switch {
		case c.ContainerID != "":
			r = 3
		case c.PodUID != "":
			r = 2
		case parts[0] == "0" && parts[1] == "":
			r = 1
		}
		if r > rank {
			best, rank = c, r
		}
	}
	if rank < 0 {
		return Cgroup{}, fmt.Errorf("cgroup: no membership lines")
	}
	return best, nil
}

// parsePath reads one cgroup path. Nested containers (a Kubernetes node
// that is itself a container) resolve to the innermost one.
func parsePath(p string) Cgroup {
	c := Cgroup{Path: p}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if uid, ok := podSegment(s); ok {
			c.PodUID = uid
			c.Runtime, c.ContainerID = "", ""
			continue
		}
		if rt, id, ok := containerSegment(s); ok {
			if rt == "" && i > 0 && segs[i-1] == "docker" {
				rt = RuntimeDocker
			}
			c.Runtime, c.ContainerID = rt, id
			continue
		}
		if strings.HasSuffix(s, ".service") && len(s) > len(".service") {
			c.Unit = s
		}
	}
	return c
}

// podSegment recognises pod<uid> (cgroupfs) and
// kubepods[-<qos>]-pod<uid_with_underscores>.slice (systemd, also with the
// "kubelet-" prefix kubelets in nested setups use).
func podSegment(s string) (string, bool) {
	switch {
	case strings.HasSuffix(s, ".slice"):
		i := strings.LastIndex(s, "-pod")
		if i < 0 || !strings.Contains(s[:i+1], "kubepods") {
			return "", false
		}
		uid := strings.ReplaceAll(strings.TrimSuffix(s[i+len("-pod"):], ".slice"), "_", "-")
		return uid, isUID(uid)
	case strings.HasPrefix(s, "pod"):
		uid := s[len("pod"):]
		return uid, isUID(uid)
	}
	return "", false
}

// containerSegment recognises a bare 64-hex-digit ID (cgroupfs) and the
// runtime-prefixed forms; conmon's own scopes are not containers.
func containerSegment(s string) (runtime, id string, ok bool) {
	if isContainerID(s) {
		return "", s, true
	}
	name := strings.TrimSuffix(s, ".scope")
	for _, p := range []struct{ prefix, runtime string }{
		{"cri-containerd-", RuntimeContainerd},
		{"containerd-", RuntimeContainerd},
		{"docker-", RuntimeDocker},
		{"crio-", RuntimeCRIO},
		{"libpod-", RuntimePodman},
	} {
		if id, found := strings.CutPrefix(name, p.prefix); found && isContainerID(id) {
			return p.runtime, id, true
		}
	}
	return "", "", false
}

func isContainerID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isHex(s[i]) {
			return false
		}
	}
	return true
}

// isUID accepts the 8-4-4-4-12 form Kubernetes writes UIDs in.
func isUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return false
			}
		default:
			if !isHex(s[i]) {
				return false
			}
		}
	}
	return true
}

func isHex(b byte) bool { return '0' <= b && b <= '9' || 'a' <= b && b <= 'f' }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

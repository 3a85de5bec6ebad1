// Package ebpf captures the socket traffic of HTTP servers on configured
// ports with syscall tracepoints and hands it out as traffic.Events. The
// kernel side is in capture.bpf.c; `go generate` rebuilds the committed
// objects with clang.
package ebpf

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/open-autoglm/autoglm-monitor/exporter/traffic"
)

const (
	// DefaultCaptureBytes is enough for request headers and the start of a
	// JSON body (where "model" usually is) and for whole SSE chunks.
	DefaultCaptureBytes = 4096
	// MaxCaptureBytes is the kernel side's limit (CAPTURE_LIMIT).
	MaxCaptureBytes = 16384
	// DefaultRingBufferBytes holds several seconds of events at 5k req/s.
	DefaultRingBufferBytes = 16 << 20

	headerSize   = 32 // sizeof(struct event)
	openInfoSize = 40 // sizeof(struct open_info)
	skipInfoSize = 16 // sizeof(struct skip_info)

	// kindDataSkip is KIND_DATA_SKIP: a Data record whose middle was left out.
	kindDataSkip = 4

	// Mirrors of capture.bpf.c: the fd of a process mark, conn flags and
	// the serving array's size.
	fdProcess   = 0xffffffff
	connTracked = 1
	connProcess = 64
	tgidSlots   = 65536
	// Values of the serving array (SERVING, SERVING_STREAMS).
	slotServing = 1
	slotStreams = 2

	afInet  = 2
	afInet6 = 10

	// How often connections of processes that exited without close(2) are
	// forgotten.
	gcInterval = 30 * time.Second

	// Run looks at the ring again when, at the rate the last look found, it
	// would hold lookFill of its size; every look wakes the process, and
	// fewer, larger batches cost less per event. Bounds: minPoll, and
	// maxPoll for the default ring (proportionally less for a smaller one,
	// so an idle ring hit by a burst is looked at in time).
	lookFill = 1.0 / 16
	minPoll  = 5 * time.Millisecond
	maxPoll  = 200 * time.Millisecond
)

// Options configure the eBPF source.
type Options struct {
	// Ports are the local (server) ports to observe; required.
	Ports []uint16
	// CgroupPath, when set, restricts capture to processes in this cgroup v2.
	CgroupPath string
	// CaptureBytes is the most bytes copied per syscall (default 4096, at most 16384).
	CaptureBytes int
	// RingBufferBytes is the ring buffer size (default 16 MiB, a power of two).
	RingBufferBytes int
	// DisableTLS leaves TLS libraries alone: TLS connections are then seen
	// as ciphertext only.
	DisableTLS bool
	Logger     *slog.Logger
}

func (o *Options) setDefaults() error {
	if len(o.Ports) == 0 {
		return errors.New("ebpf: at least one port is required")
	}
	for i, p := range o.Ports {
		if p == 0 {
			return fmt.Errorf("ebpf: ports[%d]: port 0 is not a server port", i)
		}
	}
	if len(o.Ports) > 64 {
		return fmt.Errorf("ebpf: at most 64 ports can be observed, got %d", len(o.Ports))
	}
	if o.CaptureBytes == 0 {
		o.CaptureBytes = DefaultCaptureBytes
	}
	if o.CaptureBytes < 0 || o.CaptureBytes > MaxCaptureBytes {
		return fmt.Errorf("ebpf: capture bytes must be between 1 and %d, got %d", MaxCaptureBytes, o.CaptureBytes)
	}
	if o.RingBufferBytes == 0 {
		o.RingBufferBytes = DefaultRingBufferBytes
	}
	if r := o.RingBufferBytes; r < os.Getpagesize() || r&(r-1) != 0 || r > 1<<30 {
		return fmt.Errorf("ebpf: ring buffer bytes must be a power of two between %d and %d, got %d", os.Getpagesize(), 1<<30, r)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Source is a loaded and attached capture.
type Source struct {
	logger *slog.Logger
	objs   captureObjects
	links  []link.Link
	rd     *ring
	tls    *tlsProbes
	ports  []uint16
	// wallOffset turns bpf_ktime_get_ns (CLOCK_MONOTONIC) into wall clock nanoseconds.
	wallOffset int64
	now        func() time.Time

	events    atomic.Uint64
	malformed atomic.Uint64
	// reaped counts connections forgotten because their process is gone.
	reaped atomic.Uint64
	// canReap is false when /proc shows another pid namespace than the
	// kernel's pids, so a missing /proc/<pid> would prove nothing.
	canReap bool

	// streams are the processes seen answering text/event-stream: the
	// kernel follows their event streams' chunked bodies and leaves the
	// middle of large writes out (SERVING_STREAMS).
	streamMu   sync.Mutex
	streams    map[uint32]bool
	lastStream uint32
	skip       traffic.Skip

	closeOnce sync.Once
	closeErr  error
	closed    atomic.Bool
}

// New checks the host, loads the programs and attaches them. Events are
// buffered in the kernel until Run reads them.
func New(o Options) (*Source, error) {
	if err := o.setDefaults(); err != nil {
		return nil, err
	}
	if err := Preflight(); err != nil {
		return nil, err
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("ebpf: lifting the memlock limit: %w", err)
	}
	s := &Source{logger: o.Logger, ports: o.Ports, now: time.Now, streams: map[uint32]bool{}}
	if err := s.load(o); err != nil {
		return nil, err
	}
	s.canReap = initialPIDNamespace()
	if !s.canReap {
		o.Logger.Warn("not in the host pid namespace: connections of processes that exit without close(2) stay tracked until their fd is reused; run with the host pid namespace (hostPID) to forget them")
	}
	if err := s.start(o); err != nil {
		return nil, errors.Join(err, s.Close())
	}
	o.Logger.Info("ebpf capture attached", "ports", o.Ports, "programs", len(s.links),
		"capture_bytes", o.CaptureBytes, "ring_buffer_bytes", o.RingBufferBytes, "cgroup", o.CgroupPath, "tls", !o.DisableTLS)
	return s, nil
}

// load sizes the maps, sets the constants and loads the generated objects.
// (loadCaptureObjects would load the spec as compiled: the ring buffer and
// scratch sizes and the constants must be set in between.)
func (s *Source) load(o Options) error {
	spec, err := loadCapture()
	if err != nil {
		return fmt.Errorf("ebpf: reading the embedded object: %w", err)
	}
	var specs captureSpecs
	if err := spec.Assign(&specs); err != nil {
		return fmt.Errorf("ebpf: reading the embedded object: %w", err)
	}
	if err := specs.CaptureBytes.Set(uint32(o.CaptureBytes)); err != nil {
		return fmt.Errorf("ebpf: setting capture bytes: %w", err)
	}
	if o.CgroupPath != "" {
		id, err := cgroupID(o.CgroupPath)
		if err != nil {
			return err
		}
		if err := specs.FilterCgroupId.Set(id); err != nil {
			return fmt.Errorf("ebpf: setting cgroup filter: %w", err)
		}
	}
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		return fmt.Errorf("ebpf: counting CPUs: %w", err)
	}
	specs.Events.MaxEntries = uint32(o.RingBufferBytes)
	specs.ScratchBuf.MaxEntries = uint32(cpus)
	if err := spec.LoadAndAssign(&s.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			o.Logger.Error("verifier rejected program", "log", fmt.Sprintf("%+v", ve))
		}
		return fmt.Errorf("ebpf: loading programs: %w", err)
	}
	return nil
}

// programs lists every program, for run time accounting.
func (p *capturePrograms) programs() []*ebpf.Program {
	progs := []*ebpf.Program{p.ProcessFork, p.SslSetFd, p.SslEnter, p.SslReturn, p.GoTlsEnter, p.GoTlsReturn}
	for _, tp := range p.tracepoints() {
		if !slices.Contains(progs, tp.prog) {
			progs = append(progs, tp.prog)
		}
	}
	return progs
}

// tracepoint is one syscall tracepoint and its program.
type tracepoint struct {
	name string
	prog *ebpf.Program
}

// tracepoints says which program runs at which syscall tracepoint. Data
// syscalls are watched at their exit only. Accept and dup come before
// close so that no fd is forgotten by close while its successor is
// classified by a program not yet attached.
func (p *capturePrograms) tracepoints() []tracepoint {
	return []tracepoint{
		{"sys_exit_accept", p.ExitAccept},
		{"sys_exit_accept4", p.ExitAccept4},
		{"sys_exit_dup2", p.ExitDup2},
		{"sys_exit_dup3", p.ExitDup2},
		{"sys_enter_close", p.EnterClose},
		{"sys_exit_read", p.ExitRead},
		{"sys_exit_recvfrom", p.ExitRecvfrom},
		{"sys_exit_readv", p.ExitReadv},
		{"sys_exit_recvmsg", p.ExitRecvmsg},
		{"sys_exit_write", p.ExitWrite},
		{"sys_exit_sendto", p.ExitSendto},
		{"sys_exit_writev", p.ExitWritev},
		{"sys_exit_sendmsg", p.ExitSendmsg},
		{"sys_exit_sendfile64", p.ExitSendfile64},
	}
}

func (s *Source) start(o Options) error {
	for _, p := range o.Ports {
		if err := s.objs.Ports.Put(p, uint8(1)); err != nil {
			return fmt.Errorf("ebpf: adding port %d: %w", p, err)
		}
	}
	offset, err := wallClockOffset(s.now)
	if err != nil {
		return err
	}
	s.wallOffset = offset

	rd, err := newRing(s.objs.Events)
	if err != nil {
		return fmt.Errorf("ebpf: opening ring buffer: %w", err)
	}
	s.rd = rd

	fork, err := link.AttachTracing(link.TracingOptions{Program: s.objs.ProcessFork, AttachType: ebpf.AttachTraceRawTp})
	if err != nil {
		return fmt.Errorf("ebpf: attaching process_fork to sched_process_fork: %w", err)
	}
	s.links = append(s.links, fork)
	for _, tp := range s.objs.tracepoints() {
		l, err := link.Tracepoint("syscalls", tp.name, tp.prog, nil)
		if err != nil {
			return fmt.Errorf("ebpf: attaching %s to syscalls:%s: %w", tp.prog, tp.name, err)
		}
		s.links = append(s.links, l)
	}
	// Processes already serving the ports (connections older than the
	// exporter are classified at their first read or write).
	owners, err := portOwners(o.Ports)
	if err != nil {
		s.logger.Warn("finding the processes that serve the ports", "err", err)
	}
	for _, pid := range owners {
		if err := s.markServing(pid); err != nil {
			return err
		}
	}
	if !o.DisableTLS {
		s.tls = newTLSProbes(s.logger, &s.objs, o.Ports, s.markServing)
		for _, pid := range owners {
			s.tls.examine(pid)
		}
	}
	return nil
}

// markServing makes the kernel side classify pid's unknown fds.
func (s *Source) markServing(pid uint32) error {
	key := captureConnKey{Tgid: pid, Fd: fdProcess}
	if err := s.objs.Fds.Update(&key, &captureConn{Flags: connProcess}, ebpf.UpdateNoExist); err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
		return fmt.Errorf("ebpf: marking process %d: %w", pid, err)
	}
	if err := s.objs.Serving.Put(pid&(tgidSlots-1), s.slotValue(pid)); err != nil {
		return fmt.Errorf("ebpf: marking process %d: %w", pid, err)
	}
	return nil
}

// slotValue is what pid's serving slot holds.
func (s *Source) slotValue(pid uint32) uint32 {
	s.streamMu.Lock()
	defer s.streamMu.Unlock()
	if s.streams[pid] {
		return slotServing | slotStreams
	}
	return slotServing
}

// noticeStream arms the kernel's following of event streams for the
// process of ev when ev starts a 200 text/event-stream response (HTTP/1.1).
func (s *Source) noticeStream(ev *traffic.Event) {
	if ev.PID == s.lastStream || !isEventStreamHead(ev.Data) {
		return
	}
	s.lastStream = ev.PID
	s.streamMu.Lock()
	armed := s.streams[ev.PID]
	s.streams[ev.PID] = true
	s.streamMu.Unlock()
	if armed {
		return
	}
	if err := s.objs.Serving.Put(ev.PID&(tgidSlots-1), uint32(slotServing|slotStreams)); err != nil {
		s.logger.Warn("following the event streams of a process", "pid", ev.PID, "err", err)
	}
}

var (
	okHead      = []byte("HTTP/1.1 200 ")
	eventStream = []byte("text/event-stream")
	headEnd     = []byte("\r\n\r\n")
)

// isEventStreamHead reports whether data starts a 200 response whose
// header block names text/event-stream.
func isEventStreamHead(data []byte) bool {
	if !bytes.HasPrefix(data, okHead) {
		return false
	}
	if i := bytes.Index(data, headEnd); i >= 0 {
		data = data[:i]
	}
	return bytes.Contains(data, eventStream)
}

// wallClockOffset is wall time minus CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns.
func wallClockOffset(now func() time.Time) (int64, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0, fmt.Errorf("ebpf: reading the monotonic clock: %w", err)
	}
	return now().UnixNano() - ts.Nano(), nil
}

// cgroupID returns the id bpf_get_current_cgroup_id reports for a cgroup v2
// directory: its inode number.
func cgroupID(path string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, fmt.Errorf("ebpf: cgroup path %q: %w", path, err)
	}
	if st.Type != unix.CGROUP2_SUPER_MAGIC {
		return 0, fmt.Errorf("ebpf: cgroup path %q is not on a cgroup v2 file system", path)
	}
	var fi unix.Stat_t
	if err := unix.Stat(path, &fi); err != nil {
		return 0, fmt.Errorf("ebpf: cgroup path %q: %w", path, err)
	}
	return fi.Ino, nil
}

// Run reads events until ctx is done and calls handle for each from this
// goroutine. The Event and its Data are reused after handle returns.
//
// It drains the ring buffer, then sleeps in the Go scheduler and looks
// again (see nextLook); event times come from the kernel, so polling delays
// delivery but never skews measurements. Neither an empty look nor a read
// makes a system call (see ring): a reader blocked in epoll_wait kept its
// thread in a system call, and the runtime's monitor then polled every few
// microseconds to retake it, which cost more CPU than the parsing.
func (s *Source) Run(ctx context.Context, handle func(*traffic.Event)) error {
	var ev traffic.Event
	record := func(raw []byte) {
		if s.decode(raw, &ev) {
			switch {
			case ev.Kind == traffic.Open && s.tls != nil:
				s.tls.notice(ev.PID)
			case ev.Kind == traffic.Data && ev.Dir == traffic.Egress && ev.Skip == nil:
				s.noticeStream(&ev)
			}
			s.events.Add(1)
			handle(&ev)
		}
	}
	last := s.now()
	nextGC := last.Add(gcInterval)
	wait := maxPollFor(s.rd.size())
	poll := time.NewTimer(wait)
	defer poll.Stop()
	for {
		var n uint64
		if s.rd.available() > 0 || s.closed.Load() {
			var err error
			n, err = s.rd.drain(record)
			switch {
			case errors.Is(err, errRingClosed) && ctx.Err() != nil:
				return nil
			case errors.Is(err, errRingClosed):
				return errors.New("ebpf: source closed while running")
			case err != nil:
				return fmt.Errorf("ebpf: reading ring buffer: %w", err)
			}
		}
		now := s.now()
		wait = nextLook(n, now.Sub(last), s.rd.size())
		last = now
		if s.canReap && now.After(nextGC) {
			s.reap(handle)
			nextGC = now.Add(gcInterval)
		}
		poll.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-poll.C:
		}
	}
}

// maxPollFor is the longest sleep between looks at a ring of size bytes:
// maxPoll for the default ring, less for a smaller one.
func maxPollFor(size int) time.Duration {
	return max(minPoll, min(maxPoll, time.Duration(float64(maxPoll)*float64(size)/DefaultRingBufferBytes)))
}

// nextLook is how long to sleep after a look that consumed n bytes written
// over elapsed: until the ring would hold lookFill of its size at that rate.
func nextLook(n uint64, elapsed time.Duration, size int) time.Duration {
	longest := maxPollFor(size)
	if n == 0 || elapsed <= 0 {
		return longest
	}
	d := time.Duration(float64(elapsed) * lookFill * float64(size) / float64(n))
	return max(minPoll, min(longest, d))
}

// decode fills ev from one ring buffer record; Data aliases raw.
func (s *Source) decode(raw []byte, ev *traffic.Event) bool {
	if len(raw) < headerSize {
		s.malformed.Add(1)
		return false
	}
	le := binary.LittleEndian
	n := int(le.Uint16(raw[28:]))
	body := raw[headerSize:]
	if n > len(body) {
		s.malformed.Add(1)
		return false
	}
	*ev = traffic.Event{
		Kind: traffic.Kind(raw[30]),
		Conn: traffic.ConnID(le.Uint64(raw[8:])),
		Time: time.Unix(0, int64(le.Uint64(raw[0:]))+s.wallOffset),
		PID:  le.Uint32(raw[16:]),
		FD:   le.Uint32(raw[20:]),
	}
	switch ev.Kind {
	case traffic.Data:
		ev.Dir = traffic.Direction(raw[31])
		ev.Size = le.Uint32(raw[24:])
		ev.Data = body[:n:n]
		ev.Truncated = uint32(n) < ev.Size
	case traffic.Open:
		if n < openInfoSize {
			s.malformed.Add(1)
			return false
		}
		ev.Local, ev.Remote = openAddrs(body)
	case traffic.Close:
	case kindDataSkip:
		if n < skipInfoSize || raw[31] != byte(traffic.Egress) {
			s.malformed.Add(1)
			return false
		}
		sk := traffic.Skip{
			Lead: int(le.Uint32(body[0:])), LeadLeft: int(le.Uint32(body[4:])), LeadLen: int(le.Uint16(body[8:])),
			Head: int(le.Uint16(body[10:])), TailLeft: int(le.Uint32(body[12:])),
		}
		ev.Size = le.Uint32(raw[24:])
		if tail := n - skipInfoSize - sk.LeadLen - sk.Head; tail < 0 || int64(sk.Head)+int64(tail) > int64(ev.Size) {
			s.malformed.Add(1)
			return false
		}
		ev.Kind, ev.Dir = traffic.Data, traffic.Egress
		ev.Data = body[skipInfoSize:n:n]
		s.skip = sk
		ev.Skip = &s.skip
	default:
		s.malformed.Add(1)
		return false
	}
	return true
}

// openAddrs decodes struct open_info.
func openAddrs(b []byte) (local, remote netip.AddrPort) {
	le := binary.LittleEndian
	family, lport, rport := le.Uint16(b[0:]), le.Uint16(b[2:]), le.Uint16(b[4:])
	var la, ra netip.Addr
	switch family {
	case afInet:
		la = netip.AddrFrom4([4]byte(b[8:12]))
		ra = netip.AddrFrom4([4]byte(b[24:28]))
	case afInet6:
		la = netip.AddrFrom16([16]byte(b[8:24])).Unmap()
		ra = netip.AddrFrom16([16]byte(b[24:40])).Unmap()
	default:
		return netip.AddrPort{}, netip.AddrPort{}
	}
	return netip.AddrPortFrom(la, lport), netip.AddrPortFrom(ra, rport)
}

// reap forgets the connections and marks of processes that ended without
// close(2), so the maps do not fill up; a Close event is emitted for each
// connection. Slots of the serving array that no live serving process uses
// any more are cleared, then the slots of every live mark set again, which
// undoes a clear that raced with a process being marked.
func (s *Source) reap(handle func(*traffic.Event)) {
	var (
		key   captureConnKey
		val   captureConn
		dead  []captureConnKey
		ids   []uint64
		marks []uint32
	)
	alive := map[uint32]bool{}
	it := s.objs.Fds.Iterate()
	for it.Next(&key, &val) {
		ok, seen := alive[key.Tgid]
		if !seen {
			ok = pathExists("/proc/" + strconv.FormatUint(uint64(key.Tgid), 10))
			alive[key.Tgid] = ok
		}
		switch {
		case !ok:
			dead = append(dead, key)
			ids = append(ids, val.Id)
			if val.Flags&connTracked == 0 {
				ids[len(ids)-1] = 0
			}
		case key.Fd == fdProcess:
			marks = append(marks, key.Tgid)
		}
	}
	if err := it.Err(); err != nil {
		s.logger.Warn("iterating connections", "err", err)
	}
	closed := 0
	for i, k := range dead {
		if err := s.objs.Fds.Delete(&k); err != nil || ids[i] == 0 {
			continue // closed meanwhile (the kernel side reported it), or not a connection
		}
		closed++
		s.reaped.Add(1)
		ev := traffic.Event{Kind: traffic.Close, Conn: traffic.ConnID(ids[i]), Time: s.now(), PID: k.Tgid, FD: k.Fd}
		s.events.Add(1)
		handle(&ev)
	}
	live := map[uint32]bool{}
	for _, pid := range marks {
		live[pid&(tgidSlots-1)] = true
	}
	for pid, ok := range alive {
		if slot := pid & (tgidSlots - 1); !ok && !live[slot] {
			if err := s.objs.Serving.Put(slot, uint32(0)); err != nil {
				s.logger.Warn("clearing a serving slot", "err", err)
			}
		}
	}
	s.streamMu.Lock()
	for pid := range s.streams {
		if !alive[pid] {
			if _, seen := alive[pid]; seen {
				delete(s.streams, pid)
			}
		}
	}
	s.lastStream = 0
	s.streamMu.Unlock()
	it = s.objs.Fds.Iterate()
	for it.Next(&key, &val) {
		if key.Fd == fdProcess {
			if err := s.objs.Serving.Put(key.Tgid&(tgidSlots-1), s.slotValue(key.Tgid)); err != nil {
				s.logger.Warn("restoring a serving slot", "err", err)
			}
		}
	}
	if s.tls != nil {
		s.tls.forgetDead(alive)
	}
	if closed > 0 {
		s.logger.Debug("forgot connections of exited processes", "connections", closed)
	}
}

// initialPIDNamespace reports whether this process sees the host's pids,
// which the kernel side records.
func initialPIDNamespace() bool {
	// PROC_PID_INIT_INO: the inode number of the initial pid namespace.
	const initPIDNamespaceInode = 0xEFFFFFFC
	var st unix.Stat_t
	return unix.Stat("/proc/self/ns/pid", &st) == nil && st.Ino == initPIDNamespaceInode
}

func pathExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Close detaches the programs and frees the kernel objects; a running Run returns.
func (s *Source) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		// Each detach waits for an RCU grace period; doing them in
		// parallel makes Close take one instead of one per tracepoint.
		errs := make([]error, len(s.links), len(s.links)+1)
		var wg sync.WaitGroup
		for i, l := range s.links {
			wg.Go(func() {
				if err := l.Close(); err != nil {
					errs[i] = fmt.Errorf("ebpf: detaching: %w", err)
				}
			})
		}
		wg.Wait()
		if s.rd != nil {
			if err := s.rd.close(); err != nil {
				errs = append(errs, fmt.Errorf("ebpf: closing ring buffer: %w", err))
			}
		}
		if s.tls != nil {
			errs = append(errs, s.tls.close())
		}
		if err := s.objs.Close(); err != nil {
			errs = append(errs, fmt.Errorf("ebpf: freeing kernel objects: %w", err))
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

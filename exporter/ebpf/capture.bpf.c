//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
//
// Socket capture for HTTP servers, built on syscall tracepoints and uprobes
// only (no kprobes), for x86-64.
//
// Data syscalls are watched at their exit only: the arguments are read back
// from the thread's saved user registers (bpf_task_pt_regs), which halves
// the programs run per syscall. A read or write of a process that never
// served an observed port costs one array load; the expensive decision,
// whether an fd is a server socket on an observed port, runs once per
// (process, fd). TLS plaintext comes from uprobes on OpenSSL and Go's
// crypto/tls and is emitted on the connection of the socket it belongs to;
// the ciphertext on that socket is not emitted. The chunked bodies of event
// streams (SSE) are followed chunk by chunk, so that the middle of their
// large writes need not be copied.

#define __TARGET_ARCH_x86
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual MIT/GPL";

// Upper bound of Options.CaptureBytes; the scratch buffer is twice as large
// so that masked offsets plus clamped lengths provably stay inside it.
#define CAPTURE_LIMIT 16384
#define MAX_IOV 16

#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define S_IFMT 00170000
#define S_IFSOCK 0140000

// Values match traffic.Kind and traffic.Direction.
enum event_kind {
	KIND_DATA = 1,
	KIND_OPEN = 2,
	KIND_CLOSE = 3,
	// Data of a write in a chunked event stream whose middle was left out:
	// a struct skip_info, the write's first SKIP_HEAD bytes, then its tail.
	KIND_DATA_SKIP = 4,
};

enum direction {
	DIR_INGRESS = 1,
	DIR_EGRESS = 2,
};

// Indexes into the per-CPU stats array; the Go side mirrors them.
enum capture_stat {
	STAT_RINGBUF_FULL = 0,
	STAT_MAP_FULL = 1,
	STAT_TRUNCATED = 2,
	STAT_CONNS_OPENED = 3,
	STAT_CONNS_CLOSED = 4,
	STAT_NEXT_ID = 5,
	STAT_TLS_PLAINTEXT = 6, // Data events from TLS probes
	STAT_TLS_CIPHERTEXT = 7, // syscalls on TLS connections not emitted (their plaintext is)
	STAT_TLS_NO_SOCKET = 8, // TLS calls whose socket could not be found
	STAT_TLS_UNDECRYPTED = 9, // TLS connections first seen in a process without TLS probes
	STAT_STREAM_SKIPPED = 10, // bytes in the middle of event-stream writes not copied
	STAT_MAX = 11,
};

enum call_op {
	CALL_BUF = 1,  // read/write/sendto: arg 1 is the buffer
	CALL_IOV = 2,  // readv/writev: arg 1 is an iovec array, arg 2 its length
	CALL_MSG = 3,  // sendmsg: arg 1 is a user_msghdr
	CALL_NONE = 4, // sendfile: bytes come from a file, nothing to copy
	CALL_RECV = 5, // recvfrom: as CALL_BUF, with flags in arg 3
	CALL_RECVMSG = 6, // recvmsg: as CALL_MSG, with flags in arg 2
};

#define MSG_PEEK 2

// Fixed header of every ring buffer record; Data events are followed by
// len captured bytes, Open events by a struct open_info, KIND_DATA_SKIP
// events by a struct skip_info and the bytes kept.
struct event {
	__u64 ts;
	__u64 conn_id;
	__u32 pid;
	__u32 fd;
	__u32 size;
	__u16 len;
	__u8 kind;
	__u8 dir;
};

struct open_info {
	__u16 family;
	__u16 lport;
	__u16 rport;
	__u16 pad;
	__u8 laddr[16];
	__u8 raddr[16];
};

// Key of the fds map. fd FD_PROCESS marks a process that serves (or
// served) an observed port: only such processes classify unknown fds.
struct conn_key {
	__u32 tgid;
	__u32 fd;
};
#define FD_PROCESS 0xffffffff

// Bits of conn.flags.
enum conn_flag {
	CONN_TRACKED = 1,        // an observed server connection
	CONN_IGNORED = 2,        // classified: not an observed server connection
	CONN_SEEN = 4,           // its first data was looked at for a TLS record
	CONN_TLS = 8,            // carries TLS records
	CONN_TLS_PROBED = 16,    // its process has TLS probes: ciphertext is not emitted
	CONN_CIPHER_EMITTED = 32, // ciphertext was emitted before the probes came
	CONN_PROCESS = 64,       // the process marker (fd FD_PROCESS)
	CONN_STREAM = 128,       // in the chunked body of an event stream: conn.left is valid
};

struct conn {
	__u64 id;
	__u32 flags;
	// CONN_STREAM: bytes of the next write before its first chunk-size line.
	__u32 left;
};

// Values of the serving array.
#define SERVING 1
// The process answers text/event-stream (set by the loader once it saw
// one): the chunked bodies of its event streams are followed and the
// middle of their large writes left out.
#define SERVING_STREAMS 2

// Event-stream writes longer than SKIP_MIN are kept as their first
// SKIP_HEAD and last SKIP_TAIL bytes: the head continues an event begun in
// the previous write, the tail holds the last events (where usage and
// [DONE] are). The chunk-size lines in between are followed here, so the
// parser keeps the exact framing and body size. Such a write is not even
// emitted: its tail is held in the stream's state and goes out with the
// next write that is (a short one, the body's last, or the HOLD_WRITES-th),
// because every ring record costs about as much as copying 4 KiB. Writes
// are held only once a write with the first "data:" event went out (the
// head's, or else the first after it): its time is the first token's.
#define SKIP_HEAD 512
#define SKIP_TAIL 1024
#define SKIP_MIN (SKIP_HEAD + SKIP_TAIL + 512)
#define HOLD_WRITES 32
// Chunk-size lines followed per write; a write with more is copied whole.
#define MAX_CHUNKS 24
// A response head is looked for within this many captured bytes.
#define HEAD_SCAN 1024
// Set in stream_body's answer when the body starts with a "data:" field.
#define BODY_DATA 0x40000000

// Precedes the bytes of a KIND_DATA_SKIP record: lead_len bytes that end
// earlier writes (after lead bytes not copied), then head bytes of this
// write's start, then (after the write's bytes not copied) its tail.
struct skip_info {
	__u32 lead;      // bytes of earlier writes not copied, before the lead bytes
	__u32 lead_left; // bytes of the lead bytes before their first chunk-size line
	__u16 lead_len;
	__u16 head;
	__u32 left; // bytes of the tail before its first chunk-size line
};

// A followed event stream's held bytes: the tail of its last held write.
struct stream {
	__u32 lead;      // bytes held back and not copied, before the tail
	__u32 lead_left; // bytes of the tail before its first chunk-size line
	__u32 held;      // writes held since the last one emitted
	__u32 tail_len;
	__u32 started; // the first "data:" event was emitted: later writes may be held
	__u32 pad;
	__u8 tail[SKIP_TAIL];
};

// A TLS library call in flight on this thread (OpenSSL), from the entry
// uprobe to the return uprobe.
struct tls_call {
	__u64 ssl;
	__u64 buf;
	__u64 out; // SSL_*_ex: where the library stores the byte count
	__s32 fd;  // the socket, once known
	__u8 op;   // 0: none, else TLS_READ or TLS_WRITE
	__u8 ex;
	__u8 depth;
};

enum tls_op {
	TLS_READ = 1,
	TLS_WRITE = 2,
};

// Attach cookie of the OpenSSL probes: bit 0 set for writes, bit 1 for the
// _ex variants.
#define COOKIE_WRITE 1
#define COOKIE_EX 2

struct ssl_key {
	__u32 tgid;
	__u32 pad;
	__u64 ssl;
};

// Layout of one Go binary's crypto/tls.Conn, from its DWARF or its Go
// version, set by the loader. The attach cookie of a Go probe is
// index << 1 | write.
struct go_binary {
	__u64 tcp_conn_itab; // link-time address of the *net.TCPConn,net.Conn itab; 0: unknown
	__u64 func_read;     // link-time address of (*Conn).Read, to find a PIE's load bias
	__u64 func_write;
	__u32 conn_offset;   // tls.Conn.conn
	__u32 fd_offset;     // net.conn.fd (in *net.TCPConn)
	__u32 pfd_offset;    // net.netFD.pfd
	__u32 sysfd_offset;  // internal/poll.FD.Sysfd
};
#define GO_BINARIES 64

struct go_key {
	__u32 tgid;
	__u32 pad;
	__u64 g; // the goroutine (R14 in Go's register ABI)
};

struct go_call {
	__u64 buf;
	__s32 fd;
	__u8 write;
};

// struct iovec as user space lays it out.
struct user_iov {
	__u64 base;
	__u64 len;
};

// The walk of one write through a chunked body (walk_chunks).
struct walk {
	__u32 pos;   // in: where the write's first chunk-size line starts; out: the same for the next write
	__u32 ts;    // in: where the tail would start; out: moved past a size line it fell in
	__u32 tleft; // out: bytes of the tail before its first chunk-size line
	__u32 last;  // out: the last chunk (size 0) is in this write
};

struct scratch {
	struct event hdr;
	__u8 data[CAPTURE_LIMIT * 2];
	struct user_iov iov[MAX_IOV];
	struct walk w;
};

// Set from Go before loading.
volatile const __u64 filter_cgroup_id = 0;
volatile const __u32 capture_bytes = 4096;

// The reader never waits on the ring's wait queue (it looks at the ring's
// positions on a timer), so no record signals it: a wakeup costs an
// irq_work and a lookup of per-CPU accounting for nothing.
#define OUTPUT_FLAGS BPF_RB_NO_WAKEUP

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 24);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u16);
	__type(value, __u8);
} ports SEC(".maps");

// Every fd of a serving process that was looked at: tracked connections,
// fds known not to be observed connections, and the process marker. One
// lookup answers a read or write of a serving process.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 131072);
	__type(key, struct conn_key);
	__type(value, struct conn);
} fds SEC(".maps");

// Serving processes, by the low bits of the process id: a zero slot proves
// the process never served an observed port, so its reads and writes end
// after one array load. Set when a process is marked; the reaper clears
// slots that no live serving process uses. A slot shared with a serving
// process only costs an unrelated process one fds lookup.
#define TGID_SLOTS 65536
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TGID_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} serving SEC(".maps");

// Processes whose TLS library is probed (set by the loader when it
// attaches): their TLS connections are not emitted as ciphertext.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u8);
} tls_processes SEC(".maps");

// OpenSSL objects and their sockets, from SSL_set_fd or from a syscall made
// inside an SSL call.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ssl_key);
	__type(value, __s32);
} ssl_fds SEC(".maps");

// Thread-local storage: the OpenSSL call in flight. No bucket lock on the
// hot path, and the kernel frees it when the thread exits.
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct tls_call);
} tls_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, GO_BINARIES);
	__type(key, __u32);
	__type(value, struct go_binary);
} go_binaries SEC(".maps");

// Go calls in flight, by goroutine: a goroutine blocked in Read may resume
// on another thread. LRU so that calls whose return was never seen (the
// process died) cannot fill it.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct go_key);
	__type(value, struct go_call);
} go_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

// One record per CPU, indexed by CPU number (the loader sizes it): per-CPU
// arrays cap values at 32 KiB. Programs on one CPU do not nest, so a slot
// is never shared by two running programs.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch_buf SEC(".maps");

// Event streams whose writes are held (CONN_STREAM connections); an entry
// lives from a stream's head to its last chunk or its connection's end. A
// process that dies mid-stream leaves its entries behind: the LRU drops
// them first, as the streams in progress touch theirs at every write.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct conn_key);
	__type(value, struct stream);
} streams SEC(".maps");

// A zero struct stream to start entries from (too large for the stack).
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stream);
} stream_zero SEC(".maps");

// Force the dummy types into BTF so bpf2go can generate Go structs for them.
const struct event *unused_event __attribute__((unused));
const struct open_info *unused_open_info __attribute__((unused));
const struct go_binary *unused_go_binary __attribute__((unused));

static __always_inline void stat_add(__u32 idx, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);
	if (v)
		*v += n;
}

static __always_inline bool cgroup_ok(void)
{
	return filter_cgroup_id == 0 || bpf_get_current_cgroup_id() == filter_cgroup_id;
}

static __always_inline __u32 *serving_slot(__u32 tgid)
{
	__u32 idx = tgid & (TGID_SLOTS - 1);
	return bpf_map_lookup_elem(&serving, &idx);
}

// serving_flags is the process's serving slot: 0 proves it never served
// an observed port.
static __always_inline __u32 serving_flags(__u32 tgid)
{
	__u32 *slot = serving_slot(tgid);
	return slot ? *slot : 0;
}

static __always_inline bool maybe_serving(__u32 tgid)
{
	return serving_flags(tgid) != 0;
}

// Marks tgid as a serving process: its unknown fds are classified lazily
// (connections it inherited or held before the exporter started).
static __always_inline void mark_serving(__u32 tgid)
{
	struct conn_key key = {.tgid = tgid, .fd = FD_PROCESS};
	if (!bpf_map_lookup_elem(&fds, &key)) {
		struct conn marker = {.flags = CONN_PROCESS};
		bpf_map_update_elem(&fds, &key, &marker, BPF_NOEXIST);
	}
	// After the marker, so that the reaper, which restores the slots of
	// live markers after clearing, never leaves a marked process unseen.
	__u32 *slot = serving_slot(tgid);
	if (slot && !*slot)
		*slot = 1;
}

// Ids are unique without atomics: a per-CPU sequence in the high bits and
// the CPU number in the low 12 bits.
static __always_inline __u64 next_conn_id(void)
{
	__u32 idx = STAT_NEXT_ID;
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);
	if (!v)
		return 0;
	*v += 1;
	return (*v << 12) | (bpf_get_smp_processor_id() & 0xfff);
}

// Returns the struct sock behind fd when it is a TCP socket of this process
// whose local port is observed, NULL otherwise.
static __always_inline struct sock *observed_sock(__u32 fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt)
		return NULL;
	if (fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	struct file **fdarr = BPF_CORE_READ(fdt, fd);
	struct file *file = NULL;
	if (bpf_probe_read_kernel(&file, sizeof(file), &fdarr[fd]) || !file)
		return NULL;
	umode_t mode = BPF_CORE_READ(file, f_inode, i_mode);
	if ((mode & S_IFMT) != S_IFSOCK)
		return NULL;
	struct socket *sock = BPF_CORE_READ(file, private_data);
	if (!sock || BPF_CORE_READ(sock, type) != SOCK_STREAM)
		return NULL;
	struct sock *sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return NULL;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return NULL;
	__u16 lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	if (!bpf_map_lookup_elem(&ports, &lport))
		return NULL;
	return sk;
}

static __always_inline void emit_open(struct sock *sk, struct conn_key *key, __u64 id)
{
	struct {
		struct event hdr;
		struct open_info info;
	} rec = {};

	rec.hdr.ts = bpf_ktime_get_ns();
	rec.hdr.conn_id = id;
	rec.hdr.pid = key->tgid;
	rec.hdr.fd = key->fd;
	rec.hdr.kind = KIND_OPEN;
	rec.hdr.len = sizeof(rec.info);
	rec.info.family = BPF_CORE_READ(sk, __sk_common.skc_family);
	rec.info.lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	rec.info.rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (rec.info.family == AF_INET) {
		BPF_CORE_READ_INTO(&rec.info.laddr, sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO(&rec.info.raddr, sk, __sk_common.skc_daddr);
	} else {
		BPF_CORE_READ_INTO(&rec.info.laddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&rec.info.raddr, sk, __sk_common.skc_v6_daddr);
	}
	if (bpf_ringbuf_output(&events, &rec, sizeof(rec), OUTPUT_FLAGS))
		stat_add(STAT_RINGBUF_FULL, 1);
}

static __always_inline void emit_close(struct conn_key *key, __u64 id)
{
	struct event e = {
		.ts = bpf_ktime_get_ns(),
		.conn_id = id,
		.pid = key->tgid,
		.fd = key->fd,
		.kind = KIND_CLOSE,
	};
	if (bpf_ringbuf_output(&events, &e, sizeof(e), OUTPUT_FLAGS))
		stat_add(STAT_RINGBUF_FULL, 1);
}

// Starts tracking key for sk and emits Open; returns the entry or NULL.
static __always_inline struct conn *track(struct sock *sk, struct conn_key *key)
{
	struct conn c = {.id = next_conn_id(), .flags = CONN_TRACKED};
	if (!c.id)
		return NULL;
	mark_serving(key->tgid);
	if (bpf_map_update_elem(&fds, key, &c, BPF_ANY)) {
		stat_add(STAT_MAP_FULL, 1);
		return NULL;
	}
	stat_add(STAT_CONNS_OPENED, 1);
	emit_open(sk, key, c.id);
	return bpf_map_lookup_elem(&fds, key);
}

// Classifies an fd not seen before: tracks it when it is an observed server
// socket, else remembers it as ignored.
static __always_inline struct conn *classify(struct conn_key *key)
{
	struct sock *sk = NULL;
	if (cgroup_ok())
		sk = observed_sock(key->fd);
	if (sk)
		return track(sk, key);
	struct conn ignored = {.flags = CONN_IGNORED};
	bpf_map_update_elem(&fds, key, &ignored, BPF_NOEXIST);
	return NULL;
}

// Returns the tracked connection of key, classifying the fd on first sight
// in a serving process; NULL for anything else.
static __always_inline struct conn *lookup_conn(struct conn_key *key)
{
	struct conn *c = bpf_map_lookup_elem(&fds, key);
	if (c)
		return (c->flags & CONN_TRACKED) ? c : NULL;
	struct conn_key pk = {.tgid = key->tgid, .fd = FD_PROCESS};
	if (!bpf_map_lookup_elem(&fds, &pk))
		return NULL; // a slot shared with a serving process
	return classify(key);
}

static __always_inline struct scratch *scratch(void)
{
	__u32 cpu = bpf_get_smp_processor_id();
	return bpf_map_lookup_elem(&scratch_buf, &cpu);
}

// Copies up to want bytes spread over cnt iovecs at iov_addr into this
// CPU's scratch record; returns the number of bytes copied. A global
// function, so the verifier checks the loop once, not per call site.
__noinline int copy_iov(__u64 iov_addr, __u32 cnt, __u32 want)
{
	struct scratch *s = scratch();
	if (!s)
		return 0;
	// The iovec array in one read rather than one read per iovec.
	if (cnt > MAX_IOV)
		cnt = MAX_IOV;
	if (!cnt || bpf_probe_read_user(s->iov, cnt * sizeof(struct user_iov), (void *)iov_addr))
		return 0;
	__u32 off = 0;
	for (int i = 0; i < MAX_IOV; i++) {
		if (i >= cnt)
			break;
		struct user_iov v = s->iov[i];
		__u64 n = v.len;
		__u64 left = want > off ? want - off : 0;
		if (n > left)
			n = left;
		asm volatile("" : "+r"(n));
		if (n > CAPTURE_LIMIT)
			n = CAPTURE_LIMIT;
		__u32 o = off & (CAPTURE_LIMIT - 1);
		if (bpf_probe_read_user(s->data + o, n, (void *)v.base))
			break;
		off += n;
	}
	return off;
}

// Emits the scratch record's first got bytes as an event of kind for a
// syscall that moved size bytes.
static __always_inline int emit_record(struct scratch *s, __u8 kind, __u64 conn_id, __u32 tgid, __u32 fd, __u32 size,
				       __u32 got, __u8 dir)
{
	s->hdr.ts = bpf_ktime_get_ns();
	s->hdr.conn_id = conn_id;
	s->hdr.pid = tgid;
	s->hdr.fd = fd;
	s->hdr.size = size;
	s->hdr.kind = kind;
	s->hdr.dir = dir;
	if (got > CAPTURE_LIMIT)
		got = CAPTURE_LIMIT;
	s->hdr.len = got;
	__u64 n = sizeof(s->hdr) + got;
	asm volatile("" : "+r"(n));
	if (n > sizeof(*s))
		return 0;
	if (bpf_ringbuf_output(&events, s, n, OUTPUT_FLAGS))
		stat_add(STAT_RINGBUF_FULL, 1);
	return 0;
}

// Emits the scratch record's first got bytes as a Data event of size bytes.
static __always_inline int emit_data(struct scratch *s, __u64 conn_id, __u32 tgid, __u32 fd, __u32 size, __u32 got,
				     __u8 dir)
{
	if (got < size)
		stat_add(STAT_TRUNCATED, 1);
	return emit_record(s, KIND_DATA, conn_id, tgid, fd, size, got, dir);
}

// A TLS record header: content type 20..23, then version 3.0 to 3.4. No
// HTTP message starts with these bytes; a short read is judged by what it
// has.
static __always_inline bool tls_record(__u8 *p, __u32 len)
{
	return len >= 1 && p[0] >= 20 && p[0] <= 23 && (len < 2 || p[1] == 3) && (len < 3 || p[2] <= 4);
}

static __always_inline bool tls_probed(__u32 tgid)
{
	return bpf_map_lookup_elem(&tls_processes, &tgid) != NULL;
}

// A syscall on a TLS connection whose process is probed: remember which
// socket the thread's SSL call uses.
static __always_inline void associate_ssl(__u32 tgid, __u32 fd)
{
	struct tls_call *tc = bpf_task_storage_get(&tls_calls, bpf_get_current_task_btf(), NULL, 0);
	if (!tc || !tc->op || tc->fd == (__s32)fd)
		return;
	tc->fd = fd;
	struct ssl_key sk = {.tgid = tgid, .ssl = tc->ssl};
	__s32 v = fd;
	bpf_map_update_elem(&ssl_fds, &sk, &v, BPF_ANY);
}

// first_data looks at a connection's first captured bytes: TLS records
// mark it TLS. Returns true when they must not be emitted (its process is
// probed: the plaintext comes from the probes).
static __always_inline bool first_data(struct conn *c, __u32 tgid, __u32 fd, __u8 *p, __u32 got)
{
	__u32 set = CONN_SEEN;
	bool hide = false;
	if (tls_record(p, got)) {
		set |= CONN_TLS;
		if (tls_probed(tgid)) {
			set |= CONN_TLS_PROBED;
			hide = true;
		} else {
			set |= CONN_CIPHER_EMITTED;
			stat_add(STAT_TLS_UNDECRYPTED, 1);
		}
	}
	__sync_fetch_and_or(&c->flags, set);
	if (hide) {
		associate_ssl(tgid, fd);
		stat_add(STAT_TLS_CIPHERTEXT, 1);
	}
	return hide;
}

// Copies up to want bytes at buf into this CPU's scratch record.
static __always_inline __u32 copy_buf(struct scratch *s, __u64 buf, __u32 want)
{
	__u64 n = want;
	asm volatile("" : "+r"(n));
	if (n > CAPTURE_LIMIT)
		n = CAPTURE_LIMIT;
	if (bpf_probe_read_user(s->data, n, (void *)buf))
		return 0;
	return n;
}

// Emits a Data event of size bytes whose first want bytes are at buf,
// through this CPU's scratch record: records are as long as what was
// captured (reserving a ring record directly needs a size fixed in the
// program, which wastes ring space that bursts need). Returns the bytes
// left in the scratch record, 0 when none were emitted.
static __always_inline __u32 emit_buf(struct conn *c, struct conn_key *key, __u64 id, __u32 flags, __u32 size,
				    __u64 buf, __u32 want, __u8 dir)
{
	struct scratch *s = scratch();
	if (!s)
		return 0;
	__u32 got = copy_buf(s, buf, want);
	if (!(flags & CONN_SEEN) && first_data(c, key->tgid, key->fd, s->data, got))
		return 0;
	emit_data(s, id, key->tgid, key->fd, size, got, dir);
	return got;
}

// chunk_line reads the chunk-size line at buf+pos, within a write of end
// bytes: size << 8 | its length with the CRLF; 0 when it is not a plain
// "HEX\r\n" line inside the write (extensions, more than 8 digits, a line
// cut by the end of the write). A global function: verified once.
__noinline __u64 chunk_line(__u64 buf, __u32 pos, __u32 end)
{
	__u8 b[12] = {};
	if (pos >= end)
		return 0;
	__u32 n = end - pos;
	if (n > sizeof(b))
		n = sizeof(b);
	asm volatile("" : "+r"(n));
	if (n < 3 || n > sizeof(b) || bpf_probe_read_user(b, n, (void *)(buf + pos)))
		return 0;
	__u64 v = 0;
	for (int i = 0; i < 9; i++) {
		if (i + 1 >= n)
			return 0;
		__u8 ch = b[i];
		if (ch >= '0' && ch <= '9')
			v = v << 4 | (ch - '0');
		else if (ch >= 'a' && ch <= 'f')
			v = v << 4 | (ch - 'a' + 10);
		else if (ch >= 'A' && ch <= 'F')
			v = v << 4 | (ch - 'A' + 10);
		else if (ch == '\r' && i > 0 && b[i + 1] == '\n')
			return v << 8 | (i + 2);
		else
			return 0;
	}
	return 0;
}

// walk_chunks follows the chunk-size lines of a write of ret bytes at buf,
// with this CPU's scratch walk as input and output. 0 when the framing
// cannot be followed (the write is then copied whole and the body no
// longer followed). A global function: verified once.
__noinline int walk_chunks(__u64 buf, __u32 ret)
{
	struct scratch *s = scratch();
	if (!s)
		return 0;
	struct walk w = s->w;
	__u32 pos = w.pos;
	if (pos > w.ts)
		w.tleft = pos - w.ts;
	for (int i = 0; i < MAX_CHUNKS; i++) {
		if (pos >= ret) {
			w.pos = pos - ret;
			s->w = w;
			return 1;
		}
		__u64 line = chunk_line(buf, pos, ret);
		if (!line)
			return 0;
		__u64 size = line >> 8;
		if (size == 0) {
			w.last = 1;
			s->w = w;
			return 1;
		}
		__u64 end = (__u64)pos + (line & 0xff), next = end + size + 2;
		if (next > (1ULL << 31))
			return 0;
		// Where the tail starts relative to this line, without branches
		// (each would double the states the verifier explores per
		// iteration): inside the line (the tail then starts after it), or
		// in the chunk it introduces.
		__u64 ts = w.ts;
		__u64 from = ((ts - pos) >> 63) ^ 1;            // pos <= ts
		__u64 in = from & ((ts - end) >> 63);          // ... < end
		__u64 after = from & (in ^ 1) & ((ts - next) >> 63); // end <= ts < next
		w.tleft = w.tleft + in * (size + 2 - w.tleft) + after * (next - ts - w.tleft);
		w.ts = ts + in * (end - ts);
		pos = next;
	}
	return 0;
}

// stream_body returns the offset of the first chunk-size line when the
// write captured in this CPU's scratch record (got bytes) starts a 200
// response whose body is a chunked event stream ("HEX\r\n" then "data:",
// "event:", "id:", "retry:" or a ':' comment after the blank line), else 0;
// with BODY_DATA set when that first field is "data:". A global function:
// verified once.
__noinline int stream_body(__u32 got)
{
	struct scratch *s = scratch();
	if (!s || got < 24 || *(__u64 *)&s->data[0] != 0x312e312f50545448 /* "HTTP/1.1" */ ||
	    *(__u32 *)&s->data[8] != 0x30303220 /* " 200" */ || s->data[12] != ' ')
		return 0;
	// The blank line, four offsets at a time: a byte at i+3 that is
	// neither CR nor LF rules out the four offsets ending there. (A fixed
	// step keeps the verifier's states per iteration to one.)
	__u32 body = 0;
	for (int k = 0; k < HEAD_SCAN / 4 && !body; k++) {
		__u32 i = 13 + 4 * k;
		if (i + 8 > got)
			return 0;
		__u8 c3 = s->data[i + 3];
		if (c3 != '\n' && c3 != '\r')
			continue;
		for (int j = 0; j < 4; j++) {
			if (s->data[i + j] == '\r' && s->data[i + j + 1] == '\n' && s->data[i + j + 2] == '\r' &&
			    s->data[i + j + 3] == '\n') {
				body = i + j + 4;
				break;
			}
		}
	}
	if (!body || body > HEAD_SCAN)
		return 0;
	// "HEX\r\n" then the first byte of an SSE field or comment.
	for (int k = 0; k < 10; k++) {
		__u32 j = body + k;
		if (j + 2 >= got || j + 2 >= HEAD_SCAN + 16)
			return 0;
		__u8 ch = s->data[j];
		if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F'))
			continue;
		if (k == 0 || ch != '\r' || s->data[j + 1] != '\n')
			return 0;
		__u8 f = s->data[j + 2];
		if (f == 'd')
			return body | BODY_DATA;
		return (f == 'e' || f == 'i' || f == 'r' || f == ':') ? body : 0;
	}
	return 0;
}

// emit_stream emits what a followed stream holds (st may be NULL) and then
// a write of size bytes at buf: whole when whole, else its first SKIP_HEAD
// bytes and its tail from the walk's ts. size 0 only flushes what is held.
static __always_inline int emit_stream(struct scratch *s, struct conn_key *key, __u64 id, struct stream *st,
				       __u32 size, __u64 buf, bool whole)
{
	struct skip_info *si = (struct skip_info *)s->data;
	__u32 lead_len = 0, head = 0, tail = 0, skipped = 0;
	__builtin_memset(si, 0, sizeof(*si));
	if (st) {
		lead_len = st->tail_len;
		if (lead_len > SKIP_TAIL)
			return 0;
		si->lead = st->lead;
		si->lead_left = st->lead_left;
		si->lead_len = lead_len;
		if (bpf_probe_read_kernel(s->data + sizeof(*si), lead_len, st->tail))
			return 0;
		st->lead = 0;
		st->tail_len = 0;
		st->held = 0;
	}
	__u32 off = sizeof(*si) + lead_len;
	if (whole) {
		head = size;
		if (head > SKIP_MIN)
			return 0;
	} else {
		head = SKIP_HEAD;
		tail = size - s->w.ts;
		if (tail > SKIP_TAIL)
			return 0;
		si->left = s->w.tleft;
		skipped = size - SKIP_HEAD - tail;
	}
	si->head = head;
	asm volatile("" : "+r"(off));
	if (off > sizeof(*si) + SKIP_TAIL)
		return 0;
	if (head && bpf_probe_read_user(s->data + off, head, (void *)buf))
		return 0;
	if (tail && bpf_probe_read_user(s->data + off + head, tail, (void *)(buf + s->w.ts)))
		return 0;
	if (skipped)
		stat_add(STAT_STREAM_SKIPPED, skipped);
	return emit_record(s, KIND_DATA_SKIP, id, key->tgid, key->fd, size, off + head + tail, DIR_EGRESS);
}

// hold keeps a long write of size bytes at buf back: its tail (from the
// walk's ts) replaces the stream's held tail, whose bytes join those not
// copied.
static __always_inline void hold(struct scratch *s, struct stream *st, __u32 size, __u64 buf)
{
	__u32 tail = size - s->w.ts;
	if (tail > SKIP_TAIL)
		tail = SKIP_TAIL;
	if (bpf_probe_read_user(st->tail, tail, (void *)(buf + s->w.ts)))
		tail = 0;
	__u32 dropped = st->tail_len + size - tail;
	st->lead += dropped;
	st->lead_left = s->w.tleft;
	st->tail_len = tail;
	st->held++;
	stat_add(STAT_STREAM_SKIPPED, dropped);
}

// stream_end stops following a stream: what it holds goes out first.
static __always_inline void stream_end(struct conn *c, struct conn_key *key, __u64 id)
{
	__sync_fetch_and_and(&c->flags, ~CONN_STREAM);
	struct stream *st = bpf_map_lookup_elem(&streams, key);
	if (!st)
		return;
	struct scratch *s = scratch();
	if (s && st->tail_len + st->lead)
		emit_stream(s, key, id, st, 0, 0, true);
	bpf_map_delete_elem(&streams, key);
}

// stream_write handles a write(2)/sendto(2) of ret bytes on a connection in
// an event stream's chunked body: true when it was held or emitted here;
// false when it must be copied as usual (the body is then no longer
// followed: its framing could not be followed, or its state is gone).
static __always_inline bool stream_write(struct conn *c, struct conn_key *key, __u64 id, __u32 ret, __u64 buf)
{
	struct scratch *s = scratch();
	struct stream *st = bpf_map_lookup_elem(&streams, key);
	if (!s || !st) {
		__sync_fetch_and_and(&c->flags, ~CONN_STREAM);
		return false;
	}
	bool long_write = ret > SKIP_MIN;
	s->w = (struct walk){.pos = c->left, .ts = long_write ? ret - SKIP_TAIL : 0xffffffff};
	if (!walk_chunks(buf, ret)) {
		stream_end(c, key, id);
		return false;
	}
	if (s->w.last) {
		// The body's end: what is held, then this write.
		emit_stream(s, key, id, st, ret, buf, !long_write);
		__sync_fetch_and_and(&c->flags, ~CONN_STREAM);
		bpf_map_delete_elem(&streams, key);
		return true;
	}
	c->left = s->w.pos;
	if (long_write && st->started && st->held + 1 < HOLD_WRITES) {
		hold(s, st, ret, buf);
		return true;
	}
	emit_stream(s, key, id, st, ret, buf, !long_write);
	st->started = 1;
	return true;
}

// stream_head looks at a whole write of a process that serves event
// streams: when it starts a chunked event stream whose framing can be
// followed to the write's end, its connection follows the body.
static __always_inline void stream_head(struct conn *c, struct conn_key *key, __u32 got, __u32 ret, __u64 buf)
{
	// With a capture limit below what a left-out write keeps, writes are
	// cut at the limit as before.
	if (capture_bytes < SKIP_MIN)
		return;
	__u32 body = stream_body(got);
	struct scratch *s = scratch();
	if (!body || !s)
		return;
	// A head that carries the first "data:" event holds the first token's
	// time; otherwise the next write may, and is not held.
	bool data = body & BODY_DATA;
	body &= ~BODY_DATA;
	s->w = (struct walk){.pos = body, .ts = 0xffffffff};
	if (!walk_chunks(buf, ret) || s->w.last)
		return;
	__u32 zero = 0;
	struct stream *fresh = bpf_map_lookup_elem(&stream_zero, &zero);
	if (!fresh || bpf_map_update_elem(&streams, key, fresh, BPF_ANY))
		return; // not followed: this stream is copied write by write
	if (data) {
		struct stream *st = bpf_map_lookup_elem(&streams, key);
		if (st)
			st->started = 1;
	}
	c->left = s->w.pos;
	__sync_fetch_and_or(&c->flags, CONN_STREAM);
}

// The exit of a data syscall: fd and buffer come from the saved registers.
static __always_inline int on_exit(struct trace_event_raw_sys_exit *ctx, __u8 op, __u8 dir)
{
	long ret = ctx->ret;
	if (ret <= 0)
		return 0;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u32 serving = serving_flags(tgid);
	if (!serving)
		return 0;
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	// A peek is read again: only the real read is data.
	if ((op == CALL_RECV && (regs->r10 & MSG_PEEK)) || (op == CALL_RECVMSG && (regs->dx & MSG_PEEK)))
		return 0;
	struct conn_key key = {.tgid = tgid, .fd = (__u32)regs->di};
	struct conn *c = lookup_conn(&key);
	if (!c)
		return 0;
	__u32 flags = c->flags;
	if (flags & CONN_TLS) {
		if (!(flags & CONN_TLS_PROBED) && tls_probed(tgid)) {
			__sync_fetch_and_or(&c->flags, CONN_TLS_PROBED);
			flags |= CONN_TLS_PROBED;
		}
		if (flags & CONN_TLS_PROBED) {
			associate_ssl(tgid, key.fd);
			stat_add(STAT_TLS_CIPHERTEXT, 1);
			return 0;
		}
	}
	__u64 id = c->id;
	__u32 want = capture_bytes;
	if ((__u64)ret < want)
		want = ret;
	if (dir == DIR_EGRESS && (flags & CONN_STREAM)) {
		if (op == CALL_BUF && stream_write(c, &key, id, ret, regs->si))
			return 0;
		if (op != CALL_BUF)
			stream_end(c, &key, id); // only write and sendto are followed
	}
	if (op == CALL_BUF || op == CALL_RECV) {
		__u32 got = emit_buf(c, &key, id, flags, ret, regs->si, want, dir);
		if (got && dir == DIR_EGRESS && (serving & SERVING_STREAMS) && !(flags & CONN_STREAM))
			stream_head(c, &key, got, ret, regs->si);
		return 0;
	}

	// Vector calls gather their iovecs into this CPU's scratch record.
	__u32 got = 0;
	switch (op) {
	case CALL_IOV:
		got = copy_iov(regs->si, (__u32)regs->dx, want);
		break;
	case CALL_MSG:
	case CALL_RECVMSG: {
		struct user_msghdr msg;
		if (!bpf_probe_read_user(&msg, sizeof(msg), (void *)regs->si))
			got = copy_iov((__u64)msg.msg_iov, msg.msg_iovlen, want);
		break;
	}
	}
	struct scratch *s = scratch();
	if (!s)
		return 0;
	if (!(flags & CONN_SEEN) && first_data(c, tgid, key.fd, s->data, got))
		return 0;
	return emit_data(s, id, tgid, key.fd, ret, got, dir);
}

// Forgets fd: emits Close when it was a tracked connection.
static __always_inline void forget_fd(struct conn_key *key)
{
	struct conn *c = bpf_map_lookup_elem(&fds, key);
	if (!c)
		return;
	__u64 id = c->id;
	bool tracked = c->flags & CONN_TRACKED;
	if (c->flags & CONN_STREAM)
		stream_end(c, key, id); // what a stream cut off holds goes out before Close
	if (bpf_map_delete_elem(&fds, key))
		return; // another thread forgot it first
	if (!tracked)
		return;
	stat_add(STAT_CONNS_CLOSED, 1);
	emit_close(key, id);
}

static __always_inline int on_accept_exit(struct trace_event_raw_sys_exit *ctx)
{
	long ret = ctx->ret;
	if (ret < 0 || !cgroup_ok())
		return 0;
	struct conn_key key = {.tgid = bpf_get_current_pid_tgid() >> 32, .fd = (__u32)ret};
	// State left from an fd that was closed without close(2) (close_range).
	if (maybe_serving(key.tgid))
		forget_fd(&key);
	struct sock *sk = observed_sock(key.fd);
	if (sk)
		track(sk, &key);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept")
int exit_accept(struct trace_event_raw_sys_exit *ctx) { return on_accept_exit(ctx); }

SEC("tracepoint/syscalls/sys_exit_accept4")
int exit_accept4(struct trace_event_raw_sys_exit *ctx) { return on_accept_exit(ctx); }

SEC("tracepoint/syscalls/sys_enter_close")
int enter_close(struct trace_event_raw_sys_enter *ctx)
{
	struct conn_key key = {.tgid = bpf_get_current_pid_tgid() >> 32, .fd = (__u32)ctx->args[0]};
	if (maybe_serving(key.tgid))
		forget_fd(&key);
	return 0;
}

// dup2/dup3 close their target fd implicitly; its next use must be
// classified afresh.
SEC("tracepoint/syscalls/sys_exit_dup2")
int exit_dup2(struct trace_event_raw_sys_exit *ctx)
{
	if (ctx->ret < 0)
		return 0;
	struct conn_key key = {.tgid = bpf_get_current_pid_tgid() >> 32, .fd = (__u32)ctx->ret};
	if (maybe_serving(key.tgid))
		forget_fd(&key);
	return 0;
}

// A child of a serving process may hold its connections (prefork and
// forking servers): it classifies its unknown fds too.
SEC("tp_btf/sched_process_fork")
int BPF_PROG(process_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 ptgid = parent->tgid, ctgid = child->tgid;
	if (ptgid == ctgid || !maybe_serving(ptgid))
		return 0;
	struct conn_key pk = {.tgid = ptgid, .fd = FD_PROCESS};
	if (bpf_map_lookup_elem(&fds, &pk))
		mark_serving(ctgid);
	return 0;
}

#define EXIT(name, op, dir)                                    \
	SEC("tracepoint/syscalls/sys_exit_" #name)             \
	int exit_##name(struct trace_event_raw_sys_exit *ctx)  \
	{                                                      \
		return on_exit(ctx, op, dir);                  \
	}

EXIT(read, CALL_BUF, DIR_INGRESS)
EXIT(recvfrom, CALL_RECV, DIR_INGRESS)
EXIT(readv, CALL_IOV, DIR_INGRESS)
EXIT(recvmsg, CALL_RECVMSG, DIR_INGRESS)
EXIT(write, CALL_BUF, DIR_EGRESS)
EXIT(sendto, CALL_BUF, DIR_EGRESS)
EXIT(writev, CALL_IOV, DIR_EGRESS)
EXIT(sendmsg, CALL_MSG, DIR_EGRESS)
EXIT(sendfile64, CALL_NONE, DIR_EGRESS)

// Emits TLS plaintext of n bytes at buf for the socket fd of this process.
static __always_inline void emit_plaintext(__u32 tgid, __s32 fd, __u64 buf, __u64 n, __u8 dir)
{
	if (fd < 0) {
		stat_add(STAT_TLS_NO_SOCKET, 1);
		return;
	}
	struct conn_key key = {.tgid = tgid, .fd = fd};
	struct conn *c = lookup_conn(&key);
	if (!c)
		return; // a TLS connection that is not an observed server socket
	__u32 flags = c->flags;
	if (!(flags & CONN_TLS_PROBED))
		__sync_fetch_and_or(&c->flags, CONN_SEEN | CONN_TLS | CONN_TLS_PROBED);
	__u64 id = c->id;
	if (flags & CONN_CIPHER_EMITTED) {
		// The parser was handed this connection's ciphertext before the
		// probes came, and gave up on it: continue under a new id.
		struct sock *sk = observed_sock(fd);
		__u64 nid = next_conn_id();
		if (!sk || !nid)
			return;
		c->id = nid;
		__sync_fetch_and_and(&c->flags, ~CONN_CIPHER_EMITTED);
		emit_close(&key, id);
		emit_open(sk, &key, nid);
		id = nid;
	}
	__u32 want = capture_bytes;
	if (n < want)
		want = n;
	stat_add(STAT_TLS_PLAINTEXT, 1);
	emit_buf(c, &key, id, flags | CONN_SEEN, n, buf, want, dir);
}

// OpenSSL 1.1.1 and 3: SSL_set_fd(ssl, fd).
SEC("uprobe")
int BPF_KPROBE(ssl_set_fd, void *ssl, int fd)
{
	struct ssl_key sk = {.tgid = bpf_get_current_pid_tgid() >> 32, .ssl = (__u64)ssl};
	__s32 v = fd;
	bpf_map_update_elem(&ssl_fds, &sk, &v, BPF_ANY);
	return 0;
}

// SSL_read(ssl, buf, num), SSL_write(ssl, buf, num), SSL_read_ex(ssl, buf,
// num, &readbytes), SSL_write_ex(ssl, buf, num, &written); the cookie says
// which.
SEC("uprobe")
int BPF_KPROBE(ssl_enter, void *ssl, void *buf, __u64 num, void *out)
{
	struct tls_call *tc = bpf_task_storage_get(&tls_calls, bpf_get_current_task_btf(), NULL,
						   BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!tc) {
		stat_add(STAT_MAP_FULL, 1);
		return 0;
	}
	if (tc->op) {
		// Called from within another SSL call (an _ex wrapper): the
		// outermost call reports.
		tc->depth++;
		return 0;
	}
	__u64 cookie = bpf_get_attach_cookie(ctx);
	struct ssl_key sk = {.tgid = bpf_get_current_pid_tgid() >> 32, .ssl = (__u64)ssl};
	__s32 *fd = bpf_map_lookup_elem(&ssl_fds, &sk);
	tc->ssl = (__u64)ssl;
	tc->buf = (__u64)buf;
	tc->out = (cookie & COOKIE_EX) ? (__u64)out : 0;
	tc->ex = (cookie & COOKIE_EX) != 0;
	tc->fd = fd ? *fd : -1;
	tc->depth = 0;
	tc->op = (cookie & COOKIE_WRITE) ? TLS_WRITE : TLS_READ;
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(ssl_return, int ret)
{
	struct tls_call *tc = bpf_task_storage_get(&tls_calls, bpf_get_current_task_btf(), NULL, 0);
	if (!tc || !tc->op)
		return 0;
	if (tc->depth) {
		tc->depth--;
		return 0;
	}
	struct tls_call c = *tc;
	tc->op = 0;
	__u64 n = 0;
	if (c.ex) {
		if (ret != 1 || bpf_probe_read_user(&n, sizeof(n), (void *)c.out))
			return 0;
	} else {
		if (ret <= 0)
			return 0;
		n = ret;
	}
	if (!n)
		return 0;
	emit_plaintext(bpf_get_current_pid_tgid() >> 32, c.fd, c.buf, n,
		       c.op == TLS_WRITE ? DIR_EGRESS : DIR_INGRESS);
	return 0;
}

// Go's crypto/tls (*Conn).Read(b) and (*Conn).Write(b), register ABI:
// RAX is the receiver, RBX the slice's pointer, R14 the goroutine. Entry
// finds the socket through c.conn when it is a *net.TCPConn.
SEC("uprobe")
int go_tls_enter(struct pt_regs *ctx)
{
	__u64 cookie = bpf_get_attach_cookie(ctx);
	__u32 idx = cookie >> 1;
	struct go_binary *bin = bpf_map_lookup_elem(&go_binaries, &idx);
	if (!bin)
		return 0;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u64 c = ctx->ax;
	struct go_call call = {.buf = ctx->bx, .fd = -1, .write = cookie & 1};
	// A position-independent binary is loaded at a bias; the probe's
	// address tells it.
	__u64 bias = ctx->ip - (call.write ? bin->func_write : bin->func_read);
	struct {
		__u64 tab;
		__u64 data;
	} iface = {};
	if (!bpf_probe_read_user(&iface, sizeof(iface), (void *)(c + bin->conn_offset)) &&
	    (!bin->tcp_conn_itab || iface.tab == bin->tcp_conn_itab + bias)) {
		__u64 netfd = 0;
		__s64 sysfd = -1;
		if (!bpf_probe_read_user(&netfd, sizeof(netfd), (void *)(iface.data + bin->fd_offset)) && netfd &&
		    !bpf_probe_read_user(&sysfd, sizeof(sysfd), (void *)(netfd + bin->pfd_offset + bin->sysfd_offset)))
			call.fd = sysfd;
	}
	struct go_key key = {.tgid = tgid, .g = ctx->r14};
	if (bpf_map_update_elem(&go_calls, &key, &call, BPF_ANY))
		stat_add(STAT_MAP_FULL, 1);
	return 0;
}

// Placed on every RET instruction of the two functions (no uretprobes on
// Go: they corrupt goroutine stacks). RAX is n.
SEC("uprobe")
int go_tls_return(struct pt_regs *ctx)
{
	struct go_key key = {.tgid = bpf_get_current_pid_tgid() >> 32, .g = ctx->r14};
	struct go_call *cp = bpf_map_lookup_elem(&go_calls, &key);
	if (!cp)
		return 0;
	struct go_call call = *cp;
	bpf_map_delete_elem(&go_calls, &key);
	long n = ctx->ax;
	if (n <= 0)
		return 0;
	emit_plaintext(key.tgid, call.fd, call.buf, n, call.write ? DIR_EGRESS : DIR_INGRESS);
	return 0;
}

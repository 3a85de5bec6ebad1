//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
//
// Socket capture for HTTP/1.x servers, built on syscall tracepoints only
// (no kprobes). The expensive part, deciding whether an fd is a server
// socket on an observed port, runs once per (process, fd); every other
// read or write of an unrelated process costs a cgroup check, an array
// lookup and one hash lookup on enter and a thread-local storage lookup on
// exit.

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

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
	STAT_UNWOKEN_BYTES = 6, // bytes this CPU wrote since it last woke the reader
	STAT_MAX = 7,
};

enum call_op {
	CALL_BUF = 1,  // read/write/recvfrom/sendto: args[1] is the buffer
	CALL_IOV = 2,  // readv/writev: args[1] is an iovec array, args[2] its length
	CALL_MSG = 3,  // recvmsg/sendmsg: args[1] is a user_msghdr
	CALL_NONE = 4, // sendfile: bytes come from a file, nothing to copy
};

// Fixed header of every ring buffer record; Data events are followed by
// len captured bytes, Open events by a struct open_info.
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

struct conn_key {
	__u32 tgid;
	__u32 fd;
};

// A syscall in flight on a tracked connection, kept in the thread's local
// storage from enter to exit. op is 0 when nothing is in flight.
struct call {
	__u64 conn_id;
	__u64 arg;
	__u32 fd;
	__u32 cnt;
	__s32 nr;
	__u8 op;
	__u8 dir;
};

struct scratch {
	struct event hdr;
	__u8 data[CAPTURE_LIMIT * 2];
};

// Set from Go before loading.
volatile const __u64 filter_cgroup_id = 0;
volatile const __u32 capture_bytes = 4096;
// Bytes one CPU writes to the ring buffer before it wakes the reader; in
// between the reader polls on a short timer, which saves a wakeup per event.
volatile const __u64 wakeup_bytes = 0;

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

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct conn_key);
	__type(value, __u64);
} conns SEC(".maps");

// Tracked connections per process, counted in a slot chosen by the low bits
// of the process id. A zero slot proves the process has none, which spares
// processes that never accepted on an observed port the conns lookup; a
// slot shared by several processes, or left non-zero by one that exited
// without close(2), only costs that lookup.
#define TGID_SLOTS 65536
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TGID_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} tgid_conns SEC(".maps");

// fds known not to be observed server sockets; LRU so that it never fills.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct conn_key);
	__type(value, __u8);
} ignored SEC(".maps");

// Thread-local storage instead of a hash keyed by thread: no bucket lock on
// the hot path, and the kernel frees it when the thread exits.
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct call);
} calls SEC(".maps");

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

// Force the dummy types into BTF so bpf2go can generate Go structs for them.
const struct event *unused_event __attribute__((unused));
const struct open_info *unused_open_info __attribute__((unused));

static __always_inline void stat_add(__u32 idx, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);
	if (v)
		*v += n;
}

// Counts per CPU rather than asking the ring how much is unread: the
// ring's positions share cache lines the reader writes after every record,
// and reading them cost more than the rest of the record's output.
static __always_inline __u64 output_flags(__u64 size)
{
	__u32 idx = STAT_UNWOKEN_BYTES;
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);
	if (!v)
		return BPF_RB_FORCE_WAKEUP;
	__u64 n = *v + size;
	if (n < wakeup_bytes) {
		*v = n;
		return BPF_RB_NO_WAKEUP;
	}
	*v = 0;
	return BPF_RB_FORCE_WAKEUP;
}

static __always_inline bool cgroup_ok(void)
{
	return filter_cgroup_id == 0 || bpf_get_current_cgroup_id() == filter_cgroup_id;
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
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *file = NULL;
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) || !file)
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
	if (bpf_ringbuf_output(&events, &rec, sizeof(rec), output_flags(sizeof(rec))))
		stat_add(STAT_RINGBUF_FULL, 1);
}

static __always_inline __u32 *tgid_slot(__u32 tgid)
{
	__u32 idx = tgid & (TGID_SLOTS - 1);
	return bpf_map_lookup_elem(&tgid_conns, &idx);
}

// Starts tracking key for sk; returns the new id or 0.
static __always_inline __u64 track(struct sock *sk, struct conn_key *key)
{
	__u64 id = next_conn_id();
	if (!id)
		return 0;
	__u32 *slot = tgid_slot(key->tgid);
	if (!slot)
		return 0;
	// Counted before the connection becomes visible, so that no thread
	// sees a zero slot while it exists.
	__sync_fetch_and_add(slot, 1);
	if (bpf_map_update_elem(&conns, key, &id, BPF_ANY)) {
		__sync_fetch_and_sub(slot, 1);
		stat_add(STAT_MAP_FULL, 1);
		return 0;
	}
	stat_add(STAT_CONNS_OPENED, 1);
	emit_open(sk, key, id);
	return id;
}

// Returns the conn id of fd, classifying the fd on first sight so that
// connections accepted before we started are picked up too.
static __always_inline __u64 lookup_conn(struct conn_key *key)
{
	__u32 *slot = tgid_slot(key->tgid);
	if (slot && *slot) {
		__u64 *id = bpf_map_lookup_elem(&conns, key);
		if (id)
			return *id;
	}
	if (bpf_map_lookup_elem(&ignored, key))
		return 0;
	struct sock *sk = observed_sock(key->fd);
	if (!sk) {
		__u8 one = 1;
		bpf_map_update_elem(&ignored, key, &one, BPF_ANY);
		return 0;
	}
	return track(sk, key);
}

static __always_inline int on_enter(struct trace_event_raw_sys_enter *ctx, __u8 op, __u8 dir)
{
	if (!cgroup_ok())
		return 0;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct conn_key key = {.tgid = pid_tgid >> 32, .fd = (__u32)ctx->args[0]};
	__u64 id = lookup_conn(&key);
	if (!id)
		return 0;
	struct call *c = bpf_task_storage_get(&calls, bpf_get_current_task_btf(), NULL,
					      BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!c) {
		stat_add(STAT_MAP_FULL, 1);
		return 0;
	}
	c->conn_id = id;
	c->arg = ctx->args[1];
	c->fd = key.fd;
	c->cnt = (__u32)ctx->args[2];
	c->nr = ctx->id;
	c->op = op;
	c->dir = dir;
	return 0;
}

// Copies up to want bytes spread over cnt iovecs at iov_addr into this
// CPU's scratch record; returns the number of bytes copied. A global
// function, so the verifier checks the loop once, not per call site.
__noinline int copy_iov(__u64 iov_addr, __u32 cnt, __u32 want)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct scratch *s = bpf_map_lookup_elem(&scratch_buf, &cpu);
	if (!s)
		return 0;
	const struct iovec *iov = (const struct iovec *)iov_addr;
	__u32 off = 0;
	for (int i = 0; i < MAX_IOV; i++) {
		if (i >= cnt)
			break;
		// A failed read leaves v zeroed, which copies nothing.
		struct iovec v;
		bpf_probe_read_user(&v, sizeof(v), &iov[i]);
		__u64 n = v.iov_len;
		__u64 left = want > off ? want - off : 0;
		if (n > left)
			n = left;
		asm volatile("" : "+r"(n));
		if (n > CAPTURE_LIMIT)
			n = CAPTURE_LIMIT;
		__u32 o = off & (CAPTURE_LIMIT - 1);
		if (bpf_probe_read_user(s->data + o, n, v.iov_base))
			break;
		off += n;
	}
	return off;
}

static __always_inline int on_exit(struct trace_event_raw_sys_exit *ctx)
{
	struct call *cp = bpf_task_storage_get(&calls, bpf_get_current_task_btf(), NULL, 0);
	if (!cp || !cp->op)
		return 0;
	struct call c = *cp;
	cp->op = 0;
	// State of another syscall is stale: its exit never ran here. (The
	// loader attaches exits before enters, so this should not happen.)
	if (c.nr != ctx->id)
		return 0;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	long ret = ctx->ret;
	if (ret <= 0)
		return 0;

	__u32 cpu = bpf_get_smp_processor_id();
	struct scratch *s = bpf_map_lookup_elem(&scratch_buf, &cpu);
	if (!s)
		return 0;
	__u32 want = capture_bytes;
	if ((__u64)ret < want)
		want = ret;
	__u32 got = 0;
	switch (c.op) {
	case CALL_BUF: {
		__u64 n = want;
		asm volatile("" : "+r"(n));
		if (n > CAPTURE_LIMIT)
			n = CAPTURE_LIMIT;
		if (!bpf_probe_read_user(s->data, n, (void *)c.arg))
			got = n;
		break;
	}
	case CALL_IOV:
		got = copy_iov(c.arg, c.cnt, want);
		break;
	case CALL_MSG: {
		struct user_msghdr msg;
		if (!bpf_probe_read_user(&msg, sizeof(msg), (void *)c.arg))
			got = copy_iov((__u64)msg.msg_iov, msg.msg_iovlen, want);
		break;
	}
	}

	s->hdr.ts = bpf_ktime_get_ns();
	s->hdr.conn_id = c.conn_id;
	s->hdr.pid = pid_tgid >> 32;
	s->hdr.fd = c.fd;
	s->hdr.size = ret;
	s->hdr.kind = KIND_DATA;
	s->hdr.dir = c.dir;
	if (got > CAPTURE_LIMIT)
		got = CAPTURE_LIMIT;
	s->hdr.len = got;
	if ((__u64)got < (__u64)ret)
		stat_add(STAT_TRUNCATED, 1);
	__u64 size = sizeof(s->hdr) + got;
	asm volatile("" : "+r"(size));
	if (size > sizeof(*s))
		return 0;
	if (bpf_ringbuf_output(&events, s, size, output_flags(size)))
		stat_add(STAT_RINGBUF_FULL, 1);
	return 0;
}

// Forgets fd: emits Close when it was a tracked connection.
static __always_inline void forget_fd(struct conn_key *key)
{
	__u32 *slot = tgid_slot(key->tgid);
	if (!slot)
		return;
	__u64 *idp = NULL;
	if (*slot)
		idp = bpf_map_lookup_elem(&conns, key);
	if (!idp) {
		// Look first: lookups are lock-free, deletes take a bucket lock.
		if (bpf_map_lookup_elem(&ignored, key))
			bpf_map_delete_elem(&ignored, key);
		return;
	}
	__u64 id = *idp;
	if (bpf_map_delete_elem(&conns, key))
		return; // another thread forgot it first
	__sync_fetch_and_sub(slot, 1);
	stat_add(STAT_CONNS_CLOSED, 1);
	struct event e = {
		.ts = bpf_ktime_get_ns(),
		.conn_id = id,
		.pid = key->tgid,
		.fd = key->fd,
		.kind = KIND_CLOSE,
	};
	if (bpf_ringbuf_output(&events, &e, sizeof(e), output_flags(sizeof(e))))
		stat_add(STAT_RINGBUF_FULL, 1);
}

static __always_inline int on_accept_exit(struct trace_event_raw_sys_exit *ctx)
{
	long ret = ctx->ret;
	if (ret < 0 || !cgroup_ok())
		return 0;
	struct conn_key key = {.tgid = bpf_get_current_pid_tgid() >> 32, .fd = (__u32)ret};
	// State left from an fd that was closed without close(2) (close_range).
	forget_fd(&key);
	struct sock *sk = observed_sock(key.fd);
	if (!sk) {
		__u8 one = 1;
		bpf_map_update_elem(&ignored, &key, &one, BPF_ANY);
		return 0;
	}
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
	forget_fd(&key);
	return 0;
}

#define ENTER(name, op, dir)                                    \
	SEC("tracepoint/syscalls/sys_enter_" #name)             \
	int enter_##name(struct trace_event_raw_sys_enter *ctx) \
	{                                                       \
		return on_enter(ctx, op, dir);                  \
	}

ENTER(read, CALL_BUF, DIR_INGRESS)
ENTER(recvfrom, CALL_BUF, DIR_INGRESS)
ENTER(readv, CALL_IOV, DIR_INGRESS)
ENTER(recvmsg, CALL_MSG, DIR_INGRESS)
ENTER(write, CALL_BUF, DIR_EGRESS)
ENTER(sendto, CALL_BUF, DIR_EGRESS)
ENTER(writev, CALL_IOV, DIR_EGRESS)
ENTER(sendmsg, CALL_MSG, DIR_EGRESS)
ENTER(sendfile64, CALL_NONE, DIR_EGRESS)

// One program serves the exit of every data syscall (the loader attaches it
// to each), so the verifier checks the copy loop once.
SEC("tracepoint/syscalls/sys_exit_read")
int exit_data(struct trace_event_raw_sys_exit *ctx)
{
	return on_exit(ctx);
}

//go:build ignore

/* Maps, the ring-buffer record and helpers shared by the sensor's programs.
 *
 * Every program builds its record in a per-CPU scratch slot (the record is
 * far larger than the 512-byte BPF stack), then copies only the used part
 * into the ring buffer with bpf_ringbuf_output. A failed copy is counted per
 * CPU and per kind in `counters`, so nothing is dropped silently. */
#pragma once

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "common.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Record layout bounds. Strings (paths, argv, mount arguments) are packed
 * back to back in event.data; str_len[i] is the length of string i.
 *   STR_MAX   bound of one string: a path or the whole argv blob.
 *   STR_START a string only starts below this offset, so at most three full
 *             strings fit and every write below stays inside DATA_SZ.
 *   OFF_MASK  offsets are masked with it so the verifier can prove bounds. */
#define STR_MAX 4096
#define STR_START (3 * STR_MAX)
#define OFF_MASK 16383
#define DATA_SZ (OFF_MASK + 1 + STR_MAX)
#define NAME_MAX_ 256
#define NSTR 4
/* Path walks record at most PATH_DEPTH components (a power of two, for
 * masking) and cross at most PATH_MOUNTS mount points. */
#define PATH_DEPTH 32
#define PATH_MOUNTS 8

enum ev_flags {
	EVF_ARGS_TRUNC = 1, /* argv exceeded STR_MAX - 1 bytes */
	EVF_EXE_MEMFD = 2,  /* executable is a memfd */
	EVF_EXE_UPPER = 4,  /* executable has an overlayfs upper-layer copy */
	EVF_PATH_TRUNC = 8, /* a path exceeded PATH_DEPTH: its root side is cut */
	EVF_PATH_LONG = 16, /* a path exceeded STR_MAX bytes: its leaf side is cut */
};

/* interest flags, the value type of the `interest` LPM trie. */
enum interest_flags {
	INTEREST_ALWAYS = 1, /* report every open, even read-only */
	INTEREST_WRITES = 2, /* report opens that may write */
};

/* One ring-buffer record. Only offsetof(data) + the used part of data is
 * sent. arg[] meaning depends on kind; guard/sensor documents each. */
struct event {
	__u64 ktime;
	__u64 cgroup_id;
	__u64 start_time;
	__s64 ret;
	__u64 arg[4];
	__u32 pid, tid, ppid;
	__u32 uid, gid, euid, egid, loginuid;
	__u32 pidns, mntns, tty, cpu;
	__u16 kind, flags;
	__u16 syscall; /* x86-64 syscall number for sys_exit events */
	__u16 family, sock_type, proto, sport, dport;
	__u16 str_len[NSTR];
	__u8 saddr[16], daddr[16];
	char comm[16];
	__u8 data[DATA_SZ];
};

/* Per-kind kernel counters, one PERCPU_ARRAY slot per kind. */
struct counter {
	__u64 sent;     /* records written to the ring buffer */
	__u64 dropped;  /* ring buffer full: record lost */
	__u64 filtered; /* open events suppressed by the interest prefilter */
};

/* Key of the interest trie: a path prefix of up to 256 bytes. A directory
 * prefix ends in '/'; an exact file includes its terminating NUL. */
struct interest_key {
	__u32 prefixlen; /* in bits */
	__u8 path[NAME_MAX_];
};

struct scratch {
	struct event ev;
	struct interest_key key;
	__u64 dentries[PATH_DEPTH]; /* struct dentry *, kept as integers for bpf2go */
	__u32 off;  /* bytes of ev.data used so far */
	__u32 nstr; /* strings written so far */
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20); /* replaced from Config at load */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EV_KIND_MAX);
	__type(key, __u32);
	__type(value, struct counter);
} counters SEC(".maps");

/* Records lost per cgroup id, so a drop can be charged to a workload. LRU:
 * a flood from many short-lived cgroups evicts the oldest counts, never
 * the per-CPU totals in `counters`. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u64);
} cgroup_drops SEC(".maps");

/* Thread-group ids whose activity is not reported (the guard itself). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u8);
} ignore_tgids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__type(key, struct interest_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} interest SEC(".maps");

/* Open-prefilter verdict cache. Resolving a path costs a dentry walk; most
 * opens hit the same few files again. The cache remembers, per opened
 * (dentry, mount, inode), the interest flags its path matched, valid only
 * while `ns_gen` is unchanged. ns_gen is bumped by every namespace change the
 * sensor sees (unlink, rename, link, symlink, mount, umount) and by
 * userspace on SetInterest, so a renamed or re-pointed entry is walked
 * again. (Namespace changes made through io_uring are not seen, as no
 * io_uring operation is.) The key includes the inode and its number so that a recycled dentry
 * address for another file misses. */
struct verdict_key {
	__u64 dentry, mnt, inode, ino;
};

struct verdict {
	__u64 gen;
	__u32 want; /* interest flags the path matched, 0 for none */
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct verdict_key);
	__type(value, struct verdict);
} verdicts SEC(".maps");

/* ns_gen[0] is bumped by BPF, ns_gen[1] only by userspace (a read-modify-
 * write there would race with BPF's atomic adds). Both only grow, so their
 * sum changes on every bump. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} ns_gen SEC(".maps");

static __always_inline __u64 gen_now(void)
{
	__u32 k0 = 0, k1 = 1;
	__u64 *g0 = bpf_map_lookup_elem(&ns_gen, &k0);
	__u64 *g1 = bpf_map_lookup_elem(&ns_gen, &k1);
	return (g0 ? *g0 : 0) + (g1 ? *g1 : 0);
}

static __always_inline void gen_bump(void)
{
	__u32 zero = 0;
	__u64 *g = bpf_map_lookup_elem(&ns_gen, &zero);
	if (g)
		__sync_fetch_and_add(g, 1);
}

/* Anchors so that bpf2go -type finds the shared structs in BTF. */
struct event *unused_event __attribute__((unused));
struct counter *unused_counter __attribute__((unused));
struct interest_key *unused_interest_key __attribute__((unused));
enum vigil_kind *unused_kind __attribute__((unused));

static __always_inline bool ignored(void)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	return bpf_map_lookup_elem(&ignore_tgids, &tgid) != NULL;
}

static __always_inline struct counter *counter_for(__u16 kind)
{
	__u32 k = kind;
	return bpf_map_lookup_elem(&counters, &k);
}

/* scratch_begin returns this CPU's scratch slot, emptied for a new record. */
static __always_inline struct scratch *scratch_begin(__u16 kind)
{
	__u32 zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&scratch_map, &zero);
	if (!s)
		return NULL;
	__builtin_memset(&s->ev, 0, offsetof(struct event, data));
	s->ev.kind = kind;
	s->off = 0;
	s->nstr = 0;
	return s;
}

/* fill_task writes the acting task's identity into the record header. */
static __always_inline void fill_task(struct event *e)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	__u64 id = bpf_get_current_pid_tgid();
	__u64 ug = bpf_get_current_uid_gid();

	e->ktime = bpf_ktime_get_ns();
	e->cpu = bpf_get_smp_processor_id();
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->uid = (__u32)ug;
	e->gid = ug >> 32;
	e->euid = BPF_CORE_READ(t, cred, euid.val);
	e->egid = BPF_CORE_READ(t, cred, egid.val);
	if (bpf_core_field_exists(t->loginuid))
		e->loginuid = BPF_CORE_READ(t, loginuid.val);
	else
		e->loginuid = (__u32)-1;
	e->ppid = BPF_CORE_READ(t, real_parent, tgid);
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->start_time = BPF_CORE_READ(t, group_leader, start_time);
	e->mntns = BPF_CORE_READ(t, nsproxy, mnt_ns, ns.inum);

	/* The active pid namespace is the one at the pid's own level. */
	struct pid *p = BPF_CORE_READ(t, thread_pid);
	unsigned int level = BPF_CORE_READ(p, level);
	struct upid up = {};
	bpf_probe_read_kernel(&up, sizeof(up), &p->numbers[level & 31]);
	e->pidns = BPF_CORE_READ(up.ns, ns.inum);

	/* tty as the userspace dev_t of its device node (stat's st_rdev). */
	struct tty_struct *tty = BPF_CORE_READ(t, signal, tty);
	if (tty) {
		__u32 major = BPF_CORE_READ(tty, driver, major);
		__u32 minor = BPF_CORE_READ(tty, driver, minor_start) + BPF_CORE_READ(tty, index);
		e->tty = (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xffu) << 12);
	}
	bpf_get_current_comm(e->comm, sizeof(e->comm));
}

/* wakeup_bytes batches reader wakeups: a record wakes the reader only when
 * at least this many bytes wait in the ring; the reader also polls on a
 * timer. Each wakeup is an irq_work (a self-IPI, expensive in a VM), so
 * waking per record costs more than the record. 0 wakes on every record.
 * Set from Config at load. */
const volatile __u64 wakeup_bytes = 0;

/* emit sends the record and counts the outcome. */
static __always_inline void emit(struct scratch *s)
{
	struct counter *c = counter_for(s->ev.kind);
	__u32 used = s->off;
	if (used > DATA_SZ)
		used = DATA_SZ;
	__u64 flags = 0;
	if (wakeup_bytes)
		flags = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP
										       : BPF_RB_NO_WAKEUP;
	long err = bpf_ringbuf_output(&events, &s->ev, offsetof(struct event, data) + used, flags);
	if (err) {
		__u64 one = 1, *n = bpf_map_lookup_elem(&cgroup_drops, &s->ev.cgroup_id);
		if (n)
			__sync_fetch_and_add(n, 1);
		else
			bpf_map_update_elem(&cgroup_drops, &s->ev.cgroup_id, &one, BPF_NOEXIST);
	}
	if (!c)
		return;
	if (err)
		c->dropped++;
	else
		c->sent++;
}

/* --- strings --------------------------------------------------------- */

/* str_open starts string number s->nstr at s->off; it returns false when
 * the record has no room for another string. */
static __always_inline bool str_room(struct scratch *s)
{
	return s->nstr < NSTR && s->off < STR_START;
}

static __always_inline void str_close(struct scratch *s, __u32 start)
{
	__u32 n = s->nstr;
	if (n < NSTR)
		s->ev.str_len[n & (NSTR - 1)] = s->off - start;
	s->nstr = n + 1;
}

/* put_user_str appends a NUL-terminated user string (NULL gives ""). */
static __always_inline void put_user_str(struct scratch *s, const char *u)
{
	if (!str_room(s))
		return;
	__u32 start = s->off;
	if (u) {
		long n = bpf_probe_read_user_str(&s->ev.data[start & OFF_MASK], STR_MAX, u);
		if (n > 0)
			s->off = start + n;
	}
	str_close(s, start);
}

/* walk_path appends the absolute path of p (as seen from the task's root
 * mount) to ev.data without a terminating NUL.
 *
 *   collect dentries leaf→root, stepping from a mount's root to the dentry
 *   it is mounted on, until the namespace root; then copy names root→leaf.
 *
 * Names are collected first so the path is written in reading order, which
 * the interest trie needs. Both loops run under bpf_loop, so the verifier
 * checks each body once instead of every unrolled branch. */
struct walk_ctx {
	struct dentry *d;
	struct mount *m;
	__u32 n;       /* dentries collected */
	__u32 crossed; /* mount points crossed */
	__u32 off;     /* write offset in ev.data */
	__u32 limit;   /* last offset at which another name may start */
	__u16 trunc; /* EVF_PATH_TRUNC or EVF_PATH_LONG */
};

static __always_inline struct scratch *scratch_get(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&scratch_map, &zero);
}

static long walk_up(__u32 i, void *arg)
{
	struct walk_ctx *w = arg;
	struct scratch *s = scratch_get();
	if (!s)
		return 1;
	struct dentry *d = w->d;
	struct mount *m = w->m;
	struct dentry *root = BPF_CORE_READ(m, mnt.mnt_root);
	struct dentry *parent = BPF_CORE_READ(d, d_parent);
	if (d == root || d == parent) {
		struct mount *mp = BPF_CORE_READ(m, mnt_parent);
		if (d != root && w->n < PATH_DEPTH) {
			/* A pseudo or disconnected dentry (memfd, pipe, anon
			 * inode) is its own parent: keep its name and stop. */
			s->dentries[w->n & (PATH_DEPTH - 1)] = (__u64)d;
			w->n++;
			return 1;
		}
		if (mp == m || w->crossed >= PATH_MOUNTS)
			return 1;
		w->d = BPF_CORE_READ(m, mnt_mountpoint);
		w->m = mp;
		w->crossed++;
		return 0;
	}
	if (w->n >= PATH_DEPTH) {
		w->trunc |= EVF_PATH_TRUNC;
		return 1;
	}
	s->dentries[w->n & (PATH_DEPTH - 1)] = (__u64)d;
	w->n++;
	w->d = parent;
	return 0;
}

static long walk_down(__u32 i, void *arg)
{
	struct walk_ctx *w = arg;
	struct scratch *s = scratch_get();
	if (!s || i >= w->n)
		return 1;
	if (w->off > w->limit) {
		w->trunc |= EVF_PATH_LONG;
		return 1;
	}
	struct dentry *d = (void *)s->dentries[(w->n - 1 - i) & (PATH_DEPTH - 1)];
	const unsigned char *name = BPF_CORE_READ(d, d_name.name);
	__u32 off = w->off;
	s->ev.data[off & OFF_MASK] = '/';
	off++;
	long r = bpf_probe_read_kernel_str(&s->ev.data[off & OFF_MASK], NAME_MAX_, name);
	if (r <= 1)
		return 1;
	w->off = off + r - 1;
	return 0;
}

static __always_inline void walk_path(struct scratch *s, const struct path *p)
{
	struct walk_ctx w = {};
	struct vfsmount *vm = BPF_CORE_READ(p, mnt);
	w.d = BPF_CORE_READ(p, dentry);
	w.m = (void *)vm - bpf_core_field_offset(struct mount, mnt);
	bpf_loop(PATH_DEPTH + PATH_MOUNTS, walk_up, &w, 0);

	w.off = s->off;
	w.limit = s->off + STR_MAX - NAME_MAX_ - 2;
	if (w.n == 0) {
		s->ev.data[w.off & OFF_MASK] = '/';
		w.off++;
	} else {
		bpf_loop(PATH_DEPTH, walk_down, &w, 0);
	}
	s->ev.flags |= w.trunc;
	s->off = w.off;
}

static __always_inline void put_nul(struct scratch *s)
{
	s->ev.data[s->off & OFF_MASK] = 0;
	s->off++;
}

/* put_path appends p's absolute path as one string. */
static __always_inline void put_path(struct scratch *s, const struct path *p)
{
	if (!str_room(s))
		return;
	__u32 start = s->off;
	walk_path(s, p);
	put_nul(s);
	str_close(s, start);
}

static __always_inline struct file *fd_file(int fd)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(t, files, fdt);
	if (fd < 0 || fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = NULL;
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	return f;
}

/* put_user_path appends a path argument of a *at syscall, made absolute:
 * a relative name is joined to dfd's path (or the cwd for AT_FDCWD). The
 * result is not normalised ("..", symlinks), because the name may not
 * exist (unlink, a failed open). */
static __always_inline void put_user_path(struct scratch *s, int dfd, const char *u)
{
	if (!str_room(s))
		return;
	__u32 start = s->off;
	char c = 0;
	bpf_probe_read_user(&c, 1, u);
	if (u && c != '/') {
		const struct path *base = NULL;
		if (dfd == VIGIL_AT_FDCWD) {
			struct task_struct *t = (struct task_struct *)bpf_get_current_task();
			struct fs_struct *fs = BPF_CORE_READ(t, fs);
			base = __builtin_preserve_access_index(&fs->pwd);
		} else {
			struct file *f = fd_file(dfd);
			if (f)
				base = __builtin_preserve_access_index(&f->f_path);
		}
		if (base) {
			walk_path(s, base);
			/* walk_path wrote "/" alone for the root: do not double it. */
			if (s->off != start + 1)
				s->ev.data[s->off++ & OFF_MASK] = '/';
		}
	}
	if (u) {
		long n = bpf_probe_read_user_str(&s->ev.data[s->off & OFF_MASK], STR_MAX, u);
		if (n > 0)
			s->off += n;
		else
			put_nul(s);
	} else {
		put_nul(s);
	}
	str_close(s, start);
}

/* sock_of returns the socket behind fd, or NULL when fd is not a socket. */
static __always_inline struct sock *sock_of(int fd)
{
	struct file *f = fd_file(fd);
	if (!f)
		return NULL;
	umode_t mode = BPF_CORE_READ(f, f_inode, i_mode);
	if ((mode & VIGIL_S_IFMT) != VIGIL_S_IFSOCK)
		return NULL;
	struct socket *so = BPF_CORE_READ(f, private_data);
	return BPF_CORE_READ(so, sk);
}

/* fill_sock copies family, type, protocol and both endpoints of sk. */
static __always_inline void fill_sock(struct event *e, struct sock *sk)
{
	if (!sk)
		return;
	e->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	e->sock_type = BPF_CORE_READ(sk, sk_type);
	e->proto = BPF_CORE_READ(sk, sk_protocol);
	e->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	e->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	/* Explicit sizes: BPF_CORE_READ_INTO on an array copies one element. */
	if (e->family == VIGIL_AF_INET) {
		bpf_core_read(e->saddr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_core_read(e->daddr, 4, &sk->__sk_common.skc_daddr);
	} else if (e->family == VIGIL_AF_INET6) {
		bpf_core_read(e->saddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(e->daddr, 16, &sk->__sk_common.skc_v6_daddr);
	}
}

/* read_sockaddr parses a user sockaddr_in/in6 into family, address and
 * port. It returns the family, or 0 when the address is not IPv4/IPv6. */
static __always_inline __u16 read_sockaddr(const void *u, __u8 addr[16], __u16 *port)
{
	struct sockaddr_in6 sa = {};
	if (bpf_probe_read_user(&sa, sizeof(sa), u) != 0 &&
	    bpf_probe_read_user(&sa, sizeof(struct sockaddr_in), u) != 0)
		return 0;
	if (sa.sin6_family == VIGIL_AF_INET) {
		struct sockaddr_in *in = (void *)&sa;
		__builtin_memcpy(addr, &in->sin_addr.s_addr, 4);
		*port = bpf_ntohs(in->sin_port);
		return VIGIL_AF_INET;
	}
	if (sa.sin6_family == VIGIL_AF_INET6) {
		__builtin_memcpy(addr, &sa.sin6_addr, 16);
		*port = bpf_ntohs(sa.sin6_port);
		return VIGIL_AF_INET6;
	}
	return 0;
}

/* Shared maps, types and helpers for Vigil's enforcement programs.
 *
 * Every program (LSM hooks, cgroup sock_addr, exec SIGKILL) declares the same
 * maps from this header; the Go loader creates them once and hands the same
 * map fds to every object, so one set of maps drives every backend and every
 * workload. Decisions are data: a workload is a cgroup id mapped to a
 * workload id, and deny entries are keyed by that id. */
#pragma once

#include "../include/vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#define EPERM 1
#define SIGKILL 9
#define PF_KTHREAD 0x00200000
#define AF_INET 2
#define AF_INET6 10
#define MAX_ANCESTORS 8

/* Event kinds, the same numbers as guard/event.Kind. */
#define KIND_EXEC 1
#define KIND_OPEN 10
#define KIND_CONNECT 20
#define KIND_BIND 22
#define KIND_SETUID 30
#define KIND_PTRACE 33
#define KIND_MOUNT 34
#define KIND_MODULE_LOAD 38

/* Modes, the same numbers as guard/alert.Mode. */
#define MODE_AUDIT 1
#define MODE_ENFORCE 2

/* Actions, the same numbers as guard/alert.Action. */
#define ACTION_KILL 2
#define ACTION_BLOCK 3

/* Backends, the same numbers as guard/enforce.Backend. */
#define BACKEND_LSM 1
#define BACKEND_CGROUP_SOCK 2
#define BACKEND_EXEC_KILL 3

/* Counter slots (per-CPU array). */
#define CNT_RINGBUF_DROPS 0
#define CNT_DENIED 1
#define CNT_WOULD_DENY 2
#define CNT_SKIPPED_SELF 3
#define CNT_MAX 4

/* verdict is what a deny entry asks for, with the effective mode the Go
 * resolver computed for this (workload, rule). */
struct verdict {
	__u32 rule;
	__u8 mode;
	__u8 action;
	__u8 pad[2];
};

/* inode_key names a file or an ancestor directory (a path prefix) by device
 * and inode, so it holds across mount namespaces and overlay views. */
struct inode_key {
	__u32 workload;
	__u32 kind;
	__u64 dev;
	__u64 ino;
};

struct name_key {
	__u32 workload;
	char name[16];
};

/* net_key is an LPM trie key: workload, kind and port are always matched in
 * full; the address is IPv6 or IPv4-mapped IPv6 and matched by prefix. */
struct net_key {
	__u32 prefixlen;
	__u32 workload;
	__u16 kind;
	__u16 port; /* host order; 0 matches any port */
	__u8 addr[16];
};

struct priv_key {
	__u32 workload;
	__u32 kind;
};

/* exec_allow_key is one entry of a locked workload's exec allow-list: the
 * executable's file (device and inode, after symlinks) together with the
 * name it was exec'd under (the last component of the exec'd path, at most
 * 15 bytes). Both must match: multi-call binaries such as busybox share one
 * inode across every applet name, so the inode alone would allow them all,
 * and a name alone would allow any copied or downloaded file named "cat". */
struct exec_allow_key {
	__u32 workload;
	__u32 pad;
	__u64 dev;
	__u64 ino;
	char name[16];
};

/* Allow-entry flags. ALLOW_ARGV0: the file is a multi-call binary (several
 * names reach it); it picks its behaviour from argv[0], which the caller
 * chooses freely, so argv[0]'s last component must be an allowed name of
 * the same file too. */
#define ALLOW_ARGV0 1

/* record is one "denied" or "would have denied" decision for userspace. */
struct record {
	__u64 ktime;
	__u64 cgroup;
	__u64 dev;
	__u64 ino;
	__u32 pid;
	__u32 tgid;
	__u32 workload;
	__u32 rule;
	__u16 kind;
	__u8 action;
	__u8 mode;
	__u8 backend;
	__u8 denied;
	__u16 port;
	__u8 addr[16];
	char comm[16];
	char name[32];
};

struct record *unused_record __attribute__((unused));

/* Runtime knobs set by the loader before load. */
volatile const __u32 guard_tgid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);   /* cgroup v2 id */
	__type(value, __u32); /* workload id */
} workloads SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct inode_key);
	__type(value, struct verdict);
} inode_deny SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct name_key);
	__type(value, struct verdict);
} name_deny SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct net_key);
	__type(value, struct verdict);
} net_deny SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct priv_key);
	__type(value, struct verdict);
} priv_deny SEC(".maps");

/* exec_lock marks a workload whose exec allow-list is in force: an exec
 * with no exec_allow entry is decided by this verdict (rule "profile lock",
 * its mode and action). A workload without an exec_lock entry is not
 * locked, whatever exec_allow holds. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32); /* workload id */
	__type(value, struct verdict);
} exec_lock SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct exec_allow_key);
	__type(value, __u32); /* ALLOW_* flags */
} exec_allow SEC(".maps");

/* Per-CPU scratch for an exec'd path: too big for the 512-byte stack. */
#define PATH_SCRATCH 512
struct path_buf {
	char b[PATH_SCRATCH];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct path_buf);
} path_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} records SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline void count(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &slot);
	if (v)
		__sync_fetch_and_add(v, 1);
}

/* current_workload returns the workload id of the calling task's cgroup, or
 * 0 when the cgroup is not enforced. The guard itself and host PID 1 are
 * never enforced, whatever cgroup they sit in. */
static __always_inline __u32 current_workload(void)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (tgid == guard_tgid || tgid == 1) {
		count(CNT_SKIPPED_SELF);
		return 0;
	}
	__u64 cg = bpf_get_current_cgroup_id();
	__u32 *wl = bpf_map_lookup_elem(&workloads, &cg);
	return wl ? *wl : 0;
}

/* decide emits a record and returns whether to deny. Audit mode records
 * "would have denied" and allows. */
static __always_inline bool decide(const struct verdict *v, struct record *tmpl)
{
	bool deny = v->mode == MODE_ENFORCE;
	count(deny ? CNT_DENIED : CNT_WOULD_DENY);
	struct record *r = bpf_ringbuf_reserve(&records, sizeof(*r), 0);
	if (!r) {
		count(CNT_RINGBUF_DROPS);
		return deny;
	}
	__builtin_memcpy(r, tmpl, sizeof(*r));
	__u64 pt = bpf_get_current_pid_tgid();
	r->ktime = bpf_ktime_get_ns();
	r->cgroup = bpf_get_current_cgroup_id();
	r->pid = (__u32)pt;
	r->tgid = pt >> 32;
	r->rule = v->rule;
	r->mode = v->mode;
	r->action = v->action;
	r->denied = deny;
	bpf_get_current_comm(r->comm, sizeof(r->comm));
	bpf_ringbuf_submit(r, 0);
	return deny;
}

/* lookup_file matches a file against the inode deny list, walking up to
 * MAX_ANCESTORS parent directories so a directory entry denies everything
 * beneath it (a path prefix). The walk stops at the mount root. */
static __always_inline struct verdict *lookup_file(__u32 wl, __u32 kind, struct file *f,
						   struct record *tmpl)
{
	struct inode_key k = {};
	k.workload = wl;
	k.kind = kind;
	struct dentry *d = BPF_CORE_READ(f, f_path.dentry);
	k.dev = BPF_CORE_READ(f, f_inode, i_sb, s_dev);
	tmpl->dev = k.dev;
	tmpl->ino = BPF_CORE_READ(f, f_inode, i_ino);
	bpf_probe_read_kernel_str(tmpl->name, sizeof(tmpl->name), BPF_CORE_READ(d, d_name.name));
	for (int i = 0; i < MAX_ANCESTORS; i++) {
		if (!d)
			break;
		k.ino = BPF_CORE_READ(d, d_inode, i_ino);
		struct verdict *v = bpf_map_lookup_elem(&inode_deny, &k);
		if (v)
			return v;
		struct dentry *p = BPF_CORE_READ(d, d_parent);
		if (p == d)
			break;
		d = p;
	}
	return NULL;
}

/* lookup_exec matches an executable by inode (exact path or prefix) and by
 * file name. */
static __always_inline struct verdict *lookup_exec(__u32 wl, struct file *f, struct record *tmpl)
{
	struct verdict *v = lookup_file(wl, KIND_EXEC, f, tmpl);
	if (v)
		return v;
	struct name_key nk = {};
	nk.workload = wl;
	bpf_probe_read_kernel_str(nk.name, sizeof(nk.name),
				  BPF_CORE_READ(f, f_path.dentry, d_name.name));
	return bpf_map_lookup_elem(&name_deny, &nk);
}

struct scan_ctx {
	struct path_buf *pb;
	__u32 start;
};

static long scan_slash(__u32 i, void *data)
{
	struct scan_ctx *c = data;
	if (i >= PATH_SCRATCH)
		return 1;
	if (c->pb->b[i] == '/')
		c->start = i + 1;
	return 0;
}

/* base_name copies the last component of a NUL-terminated path (kernel or
 * user memory) into name[16], truncated to 15 bytes like the Go side does.
 * A path longer than the scratch buffer, or one that cannot be read, yields
 * an empty name, which no allow entry has: a locked workload fails closed.
 * dash drops one leading '-' (argv[0] of a login shell). The scan runs in
 * bpf_loop (5.17+) so the verifier checks its body once, not per byte. */
static __always_inline void base_name(const char *path, bool user, bool dash, char name[16])
{
	__u32 zero = 0;
	struct path_buf *pb = bpf_map_lookup_elem(&path_scratch, &zero);
	if (!pb || !path)
		return;
	long n = user ? bpf_probe_read_user_str(pb->b, sizeof(pb->b), path)
		      : bpf_probe_read_kernel_str(pb->b, sizeof(pb->b), path);
	if (n <= 0 || n >= PATH_SCRATCH)
		return;
	struct scan_ctx c = {.pb = pb};
	bpf_loop(n, scan_slash, &c, 0);
	__u32 start = c.start;
	if (start >= PATH_SCRATCH - 1)
		return;
	if (dash && pb->b[start & (PATH_SCRATCH - 1)] == '-')
		start++;
	if (user)
		bpf_probe_read_user_str(name, 16, path + start);
	else
		bpf_probe_read_kernel_str(name, 16, path + start);
}

/* lookup_lock decides an exec in a locked workload. path is the exec'd path
 * (bprm->interp: the path given to execve, or the interpreter named by a
 * #! line), f the file it resolved to. It returns the lock's verdict when
 * the workload is locked and (file, name) is not on its allow-list, else
 * NULL; *flags receives the matching entry's flags. */
static __always_inline struct verdict *lookup_lock(__u32 wl, struct file *f, const char *path,
						   struct record *tmpl, __u32 *flags)
{
	struct verdict *v = bpf_map_lookup_elem(&exec_lock, &wl);
	if (!v)
		return NULL;
	struct exec_allow_key k = {};
	k.workload = wl;
	k.dev = BPF_CORE_READ(f, f_inode, i_sb, s_dev);
	k.ino = BPF_CORE_READ(f, f_inode, i_ino);
	base_name(path, false, false, k.name);
	tmpl->dev = k.dev;
	tmpl->ino = k.ino;
	__builtin_memcpy(tmpl->name, k.name, sizeof(k.name));
	__u32 *fl = bpf_map_lookup_elem(&exec_allow, &k);
	if (!fl)
		return v;
	*flags = *fl;
	return NULL;
}

/* lookup_net matches an address (IPv6 or IPv4-mapped) and host-order port:
 * first the exact port, then "any port". */
static __always_inline struct verdict *lookup_net(__u32 wl, __u16 kind, const __u8 addr[16],
						  __u16 port)
{
	struct net_key k = {};
	k.prefixlen = 64 + 128;
	k.workload = wl;
	k.kind = kind;
	k.port = port;
	__builtin_memcpy(k.addr, addr, 16);
	struct verdict *v = bpf_map_lookup_elem(&net_deny, &k);
	if (v)
		return v;
	k.port = 0;
	return bpf_map_lookup_elem(&net_deny, &k);
}

static __always_inline void v4_mapped(__u8 out[16], __u32 ip_be)
{
	__builtin_memset(out, 0, 10);
	out[10] = 0xff;
	out[11] = 0xff;
	__builtin_memcpy(out + 12, &ip_be, 4);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

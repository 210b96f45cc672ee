//go:build ignore

/* In-kernel SIGKILL on exec: the exec rung when BPF-LSM is missing. The
 * sched_process_exec tracepoint fires after the new image is installed but
 * before the task returns to user mode, so a SIGKILL sent here is delivered
 * before the new program runs a single instruction:
 *
 *   workload := workloads[cgroup of current]
 *   if exec deny list matches the new executable (inode, prefix or name)
 *   and the verdict is "kill" (or "block" with kill_blocks set):
 *       record; bpf_send_signal(SIGKILL) when mode is enforce
 *   else if the workload is locked and the new executable (file + exec'd
 *   name; for a multi-call binary also argv[0]) is not on its allow-list:
 *       record; bpf_send_signal(SIGKILL) when the lock's mode is enforce */
#include "enforce.h"

/* Set when no backend can block an exec (no LSM, no fanotify): then
 * "block" verdicts are carried out as kills rather than not at all. */
volatile const __u32 kill_blocks = 0;

/* Set when the BPF-LSM hook is live: it already decided deny lists and the
 * lock (by file and exec'd name) with EPERM, so this program only adds the
 * one check an LSM hook cannot make, argv[0] of a multi-call binary, which
 * is readable only once the new image's memory is installed. */
volatile const __u32 lsm_active = 0;

/* argv0_allowed reports whether argv[0] of the new image names an allowed
 * entry for the same file as k (whose name it overwrites). */
static __always_inline bool argv0_allowed(struct exec_allow_key *k, struct record *r)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	const char *argv0 = (const char *)BPF_CORE_READ(t, mm, arg_start);
	__builtin_memset(k->name, 0, sizeof(k->name));
	base_name(argv0, true, true, k->name);
	__builtin_memcpy(r->name, k->name, sizeof(k->name));
	return bpf_map_lookup_elem(&exec_allow, k) != NULL;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(vigil_exec_kill, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	if (BPF_CORE_READ(p, flags) & PF_KTHREAD)
		return 0;
	__u32 wl = current_workload();
	if (!wl)
		return 0;
	struct record r = {};
	r.kind = KIND_EXEC;
	r.backend = BACKEND_EXEC_KILL;
	r.workload = wl;
	if (!lsm_active) {
		struct verdict *v = lookup_exec(wl, bprm->file, &r);
		if (v && (v->action == ACTION_KILL || kill_blocks)) {
			struct verdict kill = *v;
			kill.action = ACTION_KILL;
			if (decide(&kill, &r))
				bpf_send_signal(SIGKILL);
			return 0;
		}
	}
	__u32 flags = 0;
	struct verdict *lv = lookup_lock(wl, bprm->file, bprm->interp, &r, &flags);
	if (lv && lsm_active)
		return 0; /* the LSM hook decided and recorded this exec */
	if (!lv) {
		if (!(flags & ALLOW_ARGV0))
			return 0;
		struct exec_allow_key k = {.workload = wl, .dev = r.dev, .ino = r.ino};
		if (argv0_allowed(&k, &r))
			return 0;
		lv = bpf_map_lookup_elem(&exec_lock, &wl);
		if (!lv)
			return 0;
	}
	struct verdict kill = *lv;
	kill.action = ACTION_KILL;
	if (decide(&kill, &r))
		bpf_send_signal(SIGKILL);
	return 0;
}

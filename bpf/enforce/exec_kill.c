//go:build ignore

/* In-kernel SIGKILL on exec: the exec rung when BPF-LSM is missing. The
 * sched_process_exec tracepoint fires after the new image is installed but
 * before the task returns to user mode, so a SIGKILL sent here is delivered
 * before the new program runs a single instruction:
 *
 *   workload := workloads[cgroup of current]
 *   if exec deny list matches the new executable (inode, prefix or name)
 *   and the verdict is "kill" (or "block" with kill_blocks set):
 *       record; bpf_send_signal(SIGKILL) when mode is enforce */
#include "enforce.h"

/* Set when no backend can block an exec (no LSM, no fanotify): then
 * "block" verdicts are carried out as kills rather than not at all. */
volatile const __u32 kill_blocks = 0;

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
	struct verdict *v = lookup_exec(wl, bprm->file, &r);
	if (!v)
		return 0;
	if (v->action != ACTION_KILL && !kill_blocks)
		return 0;
	struct verdict kill = *v;
	kill.action = ACTION_KILL;
	if (decide(&kill, &r))
		bpf_send_signal(SIGKILL);
	return 0;
}

//go:build ignore

/* sched_process_exit: a task is exiting.
 *
 *   if this is not the last thread of its group: ignore;
 *   arg[0] = wait status, (code << 8) | signal, from the group exit code
 *            when the whole group was told to exit, else the task's own. */
#define SIGNAL_GROUP_EXIT 0x00000004

SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_exit, struct task_struct *p, bool group_dead)
{
	if (!group_dead || ignored())
		return 0;
	struct scratch *s = scratch_begin(EV_EXIT);
	if (!s)
		return 0;
	fill_task(&s->ev);
	__u64 status = (__u32)BPF_CORE_READ(p, exit_code);
	if (BPF_CORE_READ(p, signal, flags) & SIGNAL_GROUP_EXIT)
		status = (__u32)BPF_CORE_READ(p, signal, group_exit_code);
	s->ev.arg[0] = status;
	emit(s);
	return 0;
}

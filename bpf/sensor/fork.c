//go:build ignore

/* sched_process_fork: a new process (not a thread) was created.
 *
 *   if child is a thread (pid != tgid): ignore, threads are not processes;
 *   record the parent's identity, then overwrite pid, tid, ppid and start
 *   time with the child's, so the record describes the new process. */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(on_fork, struct task_struct *parent, struct task_struct *child)
{
	pid_t pid = BPF_CORE_READ(child, pid);
	pid_t tgid = BPF_CORE_READ(child, tgid);
	if (pid != tgid || ignored())
		return 0;
	struct scratch *s = scratch_begin(EV_FORK);
	if (!s)
		return 0;
	fill_task(&s->ev);
	s->ev.pid = tgid;
	s->ev.tid = pid;
	s->ev.ppid = BPF_CORE_READ(child, real_parent, tgid);
	s->ev.start_time = BPF_CORE_READ(child, start_time);
	emit(s);
	return 0;
}

//go:build ignore

/* Helpers for the per-syscall programs that sys_exit.c tail-calls. They run
 * at syscall exit, so the return value is known; the arguments are read
 * from the saved user registers, which the kernel leaves intact (x86-64:
 * rdi, rsi, rdx, r10, r8, r9). */
#pragma once

#define SYS_EXIT(name) \
	SEC("tp_btf/sys_exit") int BPF_PROG(sys_##name, struct pt_regs *regs, long ret)

#define A0 ((long)BPF_CORE_READ(regs, di))
#define A1 ((long)BPF_CORE_READ(regs, si))
#define A2 ((long)BPF_CORE_READ(regs, dx))
#define A3 ((long)BPF_CORE_READ(regs, r10))
#define A4 ((long)BPF_CORE_READ(regs, r8))

#define TS_COMPAT 0x0002

/* skip reports whether this syscall must not be recorded: the guard's own,
 * or a 32-bit (ia32) syscall whose number only collides with an x86-64 one
 * we watch. The latter is counted in counters[0].filtered. */
static __always_inline bool skip(void)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	if (BPF_CORE_READ(t, thread_info.status) & TS_COMPAT) {
		struct counter *c = counter_for(0);
		if (c)
			c->filtered++;
		return true;
	}
	return ignored();
}

/* begin starts a record for a syscall-exit event. */
static __always_inline struct scratch *begin(struct pt_regs *regs, long ret, __u16 kind)
{
	struct scratch *s = scratch_begin(kind);
	if (!s)
		return NULL;
	fill_task(&s->ev);
	s->ev.ret = ret;
	s->ev.syscall = BPF_CORE_READ(regs, orig_ax);
	return s;
}

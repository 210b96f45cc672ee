//go:build ignore

/* Privilege syscalls, recorded at exit whether or not they succeeded.
 *   set*id:      arg[0..2] = real, effective, saved id (-1 = unchanged)
 *   capset:      arg[0..2] = effective, permitted, inheritable (64-bit)
 *   ptrace:      arg[0] = request, arg[1] = target pid
 *   mount:       strings source, target, fstype; arg[3] = flags
 *   umount2:     string target; arg[3] = flags
 *   unshare:     arg[3] = flags; setns: arg[0] = fd, arg[3] = nstype
 *   init_module: arg[0] = image length (the name is inside the image)
 *   finit_module: string 0 = path of the module file; arg[3] = flags
 *   memfd_create: string 0 = name; arg[3] = flags */

static __always_inline int ids_event(struct pt_regs *regs, long ret, __u16 kind, long r, long e, long sv)
{
	if (skip())
		return 0;
	struct scratch *s = begin(regs, ret, kind);
	if (!s)
		return 0;
	s->ev.arg[0] = (__s64)(__s32)r;
	s->ev.arg[1] = (__s64)(__s32)e;
	s->ev.arg[2] = (__s64)(__s32)sv;
	emit(s);
	return 0;
}

SYS_EXIT(setuid) { return ids_event(regs, ret, EV_SETUID, A0, -1, -1); }
SYS_EXIT(setgid) { return ids_event(regs, ret, EV_SETGID, A0, -1, -1); }
SYS_EXIT(setreuid) { return ids_event(regs, ret, EV_SETUID, A0, A1, -1); }
SYS_EXIT(setregid) { return ids_event(regs, ret, EV_SETGID, A0, A1, -1); }
SYS_EXIT(setresuid) { return ids_event(regs, ret, EV_SETUID, A0, A1, A2); }
SYS_EXIT(setresgid) { return ids_event(regs, ret, EV_SETGID, A0, A1, A2); }

SYS_EXIT(capset)
{
	if (skip())
		return 0;
	struct scratch *s = begin(regs, ret, EV_CAPSET);
	if (!s)
		return 0;
	/* _LINUX_CAPABILITY_VERSION_3: two {effective, permitted, inheritable}
	 * u32 triples, low word first. */
	__u32 d[6] = {};
	bpf_probe_read_user(d, sizeof(d), (void *)A1);
	s->ev.arg[0] = d[0] | (__u64)d[3] << 32;
	s->ev.arg[1] = d[1] | (__u64)d[4] << 32;
	s->ev.arg[2] = d[2] | (__u64)d[5] << 32;
	emit(s);
	return 0;
}

SYS_EXIT(ptrace)
{
	if (skip())
		return 0;
	struct scratch *s = begin(regs, ret, EV_PTRACE);
	if (!s)
		return 0;
	s->ev.arg[0] = A0;
	s->ev.arg[1] = A1;
	emit(s);
	return 0;
}

SYS_EXIT(mount)
{
	gen_bump();
	if (skip())
		return 0;
	struct scratch *s = begin(regs, ret, EV_MOUNT);
	if (!s)
		return 0;
	put_user_str(s, (void *)A0);
	put_user_str(s, (void *)A1);
	put_user_str(s, (void *)A2);
	s->ev.arg[3] = A3;
	emit(s);
	return 0;
}

SYS_EXIT(umount2)
{
	gen_bump();
	if (skip())
		return 0;
	struct scratch *s = begin(regs, ret, EV_UMOUNT);
	if (!s)
		return 0;
	put_user_str(s, (void *)A0);
	s->ev.arg[3] = A1;
	emit(s);
	return 0;
}

SYS_EXIT(unshare)
{
	if (skip())
		return 0;
	struct scratch *s = begin(regs, ret, EV_UNSHARE);
	if (!s)
		return 0;
	s->ev.arg[3] = A0;
	emit(s);
	return 0;
}

SYS_EXIT(setns)
{
	if (skip())
		return 0;
	struct scratch *s = begin(regs, ret, EV_SETNS);
	if (!s)
		return 0;
	s->ev.arg[0] = A0;
	s->ev.arg[3] = A1;
	emit(s);
	return 0;
}

SYS_EXIT(init_module)
{
	if (skip())
		return 0;
	struct scratch *s = begin(regs, ret, EV_MODULE_LOAD);
	if (!s)
		return 0;
	s->ev.arg[0] = A1;
	emit(s);
	return 0;
}

SYS_EXIT(finit_module)
{
	if (skip())
		return 0;
	struct scratch *s = begin(regs, ret, EV_MODULE_LOAD);
	if (!s)
		return 0;
	struct file *f = fd_file(A0);
	if (f)
		put_path(s, __builtin_preserve_access_index(&f->f_path));
	s->ev.arg[3] = A2;
	emit(s);
	return 0;
}

SYS_EXIT(memfd_create)
{
	if (skip())
		return 0;
	struct scratch *s = begin(regs, ret, EV_MEMFD);
	if (!s)
		return 0;
	put_user_str(s, (void *)A0);
	s->ev.arg[3] = A1;
	emit(s);
	return 0;
}

/* move_mount and pivot_root change which path a mounted file has; they only
 * invalidate the open-verdict cache (mount(2) with MS_MOVE is reported as a
 * mount event above). */
SYS_EXIT(move_mount)
{
	gen_bump();
	return 0;
}

SYS_EXIT(pivot_root)
{
	gen_bump();
	return 0;
}

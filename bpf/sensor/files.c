//go:build ignore

/* File syscalls, recorded at exit.
 *
 * open, openat, openat2, creat:
 *   path = the new fd's resolved path when the open succeeded, else the
 *          argument joined to dfd/cwd;
 *   look the path up in the `interest` trie (longest prefix wins), or
 *   reuse the cached answer for this (dentry, mount, inode) when no
 *   namespace change happened since (see `verdicts` in sensor.h);
 *   report when the match says ALWAYS, or says WRITES and the open may
 *   write (O_WRONLY, O_RDWR, O_CREAT, O_TRUNC); otherwise count it as
 *   filtered. Ordinary read-only opens never reach userspace.
 *   arg[0] = flags, arg[1] = mode.
 *
 * unlink(at), rename(at,at2), link(at), symlink(at): always reported;
 *   string 0 = path (symlink: the link's target as written),
 *   string 1 = new path; arg[0] = flags.
 *
 * chmod, fchmod, fchmodat, fchmodat2: reported only when the new mode sets
 *   setuid or setgid; arg[1] = mode. */

#define O_ACCMODE_ 03
#define O_WRONLY_ 01
#define O_CREAT_ 0100
#define O_TRUNC_ 01000
#define S_ISUID_ 04000
#define S_ISGID_ 02000

/* trie_want returns the interest flags of string 0 (the opened path). */
static __always_inline __u32 trie_want(struct scratch *s)
{
	if (s->ev.flags & EVF_PATH_TRUNC)
		return INTEREST_ALWAYS; /* no root-side prefix to judge: report it */
	__u32 len = s->ev.str_len[0];
	if (len > NAME_MAX_)
		len = NAME_MAX_;
	s->key.prefixlen = len * 8;
	bpf_probe_read_kernel(s->key.path, NAME_MAX_, s->ev.data);
	__u32 *want = bpf_map_lookup_elem(&interest, &s->key);
	return want ? *want : 0;
}

/* decide reports whether an open with these flags under this interest is
 * reported. */
static __always_inline bool decide(__u32 want, __u32 flags)
{
	if (want & INTEREST_ALWAYS)
		return true;
	bool writes = (flags & O_ACCMODE_) != 0 || (flags & (O_CREAT_ | O_TRUNC_));
	return writes && (want & INTEREST_WRITES);
}

static __always_inline int filtered(void)
{
	struct counter *c = counter_for(EV_OPEN);
	if (c)
		c->filtered++;
	return 0;
}

static __always_inline int do_open(struct pt_regs *regs, long ret, int dfd, const char *u,
				   __u32 flags, __u32 mode)
{
	if (skip())
		return 0;
	struct file *f = ret >= 0 ? fd_file(ret) : NULL;
	struct verdict_key vk = {};
	__u64 gen = 0;
	if (f) {
		vk.dentry = (__u64)BPF_CORE_READ(f, f_path.dentry);
		vk.mnt = (__u64)BPF_CORE_READ(f, f_path.mnt);
		vk.inode = (__u64)BPF_CORE_READ(f, f_inode);
		vk.ino = BPF_CORE_READ(f, f_inode, i_ino);
		gen = gen_now();
		struct verdict *v = bpf_map_lookup_elem(&verdicts, &vk);
		if (v && v->gen == gen && !decide(v->want, flags))
			return filtered();
	}
	struct scratch *s = scratch_begin(EV_OPEN);
	if (!s)
		return 0;
	if (f)
		put_path(s, __builtin_preserve_access_index(&f->f_path));
	else
		put_user_path(s, dfd, u);
	__u32 want = trie_want(s);
	if (f) {
		/* gen was read before the walk: a change meanwhile leaves a
		 * stale generation, so the entry is recomputed next time. */
		struct verdict nv = {.gen = gen, .want = want};
		bpf_map_update_elem(&verdicts, &vk, &nv, BPF_ANY);
	}
	if (!decide(want, flags))
		return filtered();
	fill_task(&s->ev);
	s->ev.ret = ret;
	s->ev.syscall = BPF_CORE_READ(regs, orig_ax);
	s->ev.arg[0] = flags;
	s->ev.arg[1] = mode;
	emit(s);
	return 0;
}

SYS_EXIT(open) { return do_open(regs, ret, VIGIL_AT_FDCWD, (void *)A0, A1, A2); }
SYS_EXIT(creat) { return do_open(regs, ret, VIGIL_AT_FDCWD, (void *)A0, O_CREAT_ | O_WRONLY_ | O_TRUNC_, A1); }
SYS_EXIT(openat) { return do_open(regs, ret, A0, (void *)A1, A2, A3); }
SYS_EXIT(openat2)
{
	struct open_how how = {};
	bpf_probe_read_user(&how, sizeof(how), (void *)A2);
	return do_open(regs, ret, A0, (void *)A1, how.flags, how.mode);
}

/* path_event records a namespace change of one or two paths. */
static __always_inline int path_event(struct pt_regs *regs, long ret, __u16 kind, int dfd1,
				      const char *p1, int dfd2, const char *p2, __u64 flags)
{
	gen_bump(); /* paths may now name other files: see `verdicts` */
	if (skip())
		return 0;
	struct scratch *s = begin(regs, ret, kind);
	if (!s)
		return 0;
	put_user_path(s, dfd1, p1);
	if (p2)
		put_user_path(s, dfd2, p2);
	s->ev.arg[0] = flags;
	emit(s);
	return 0;
}

SYS_EXIT(unlink) { return path_event(regs, ret, EV_UNLINK, VIGIL_AT_FDCWD, (void *)A0, 0, NULL, 0); }
SYS_EXIT(unlinkat) { return path_event(regs, ret, EV_UNLINK, A0, (void *)A1, 0, NULL, A2); }
SYS_EXIT(rename) { return path_event(regs, ret, EV_RENAME, VIGIL_AT_FDCWD, (void *)A0, VIGIL_AT_FDCWD, (void *)A1, 0); }
SYS_EXIT(renameat) { return path_event(regs, ret, EV_RENAME, A0, (void *)A1, A2, (void *)A3, 0); }
SYS_EXIT(renameat2) { return path_event(regs, ret, EV_RENAME, A0, (void *)A1, A2, (void *)A3, A4); }
SYS_EXIT(link) { return path_event(regs, ret, EV_LINK, VIGIL_AT_FDCWD, (void *)A0, VIGIL_AT_FDCWD, (void *)A1, 0); }
SYS_EXIT(linkat) { return path_event(regs, ret, EV_LINK, A0, (void *)A1, A2, (void *)A3, A4); }

static __always_inline int symlink_event(struct pt_regs *regs, long ret, const char *target, int dfd,
					 const char *linkpath)
{
	gen_bump();
	if (skip())
		return 0;
	struct scratch *s = begin(regs, ret, EV_SYMLINK);
	if (!s)
		return 0;
	put_user_str(s, target);
	put_user_path(s, dfd, linkpath);
	emit(s);
	return 0;
}

SYS_EXIT(symlink) { return symlink_event(regs, ret, (void *)A0, VIGIL_AT_FDCWD, (void *)A1); }
SYS_EXIT(symlinkat) { return symlink_event(regs, ret, (void *)A0, A1, (void *)A2); }

static __always_inline int chmod_event(struct pt_regs *regs, long ret, int dfd, const char *u,
				       int fd, __u32 mode, __u64 flags)
{
	if (!(mode & (S_ISUID_ | S_ISGID_)) || skip())
		return 0;
	struct scratch *s = begin(regs, ret, EV_CHMOD);
	if (!s)
		return 0;
	if (u) {
		put_user_path(s, dfd, u);
	} else {
		struct file *f = fd_file(fd);
		if (f)
			put_path(s, __builtin_preserve_access_index(&f->f_path));
	}
	s->ev.arg[0] = flags;
	s->ev.arg[1] = mode;
	emit(s);
	return 0;
}

SYS_EXIT(chmod) { return chmod_event(regs, ret, VIGIL_AT_FDCWD, (void *)A0, -1, A1, 0); }
SYS_EXIT(fchmod) { return chmod_event(regs, ret, 0, NULL, A0, A1, 0); }
SYS_EXIT(fchmodat) { return chmod_event(regs, ret, A0, (void *)A1, -1, A2, 0); }
SYS_EXIT(fchmodat2) { return chmod_event(regs, ret, A0, (void *)A1, -1, A2, A3); }

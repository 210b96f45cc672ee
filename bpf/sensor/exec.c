//go:build ignore

/* sched_process_exec: a task finished execve and now runs a new image.
 *
 *   record the acting task (already the new image);
 *   string 0 = resolved path of the executable file (bprm->file);
 *   string 1 = argv as the NUL-separated bytes mm->arg_start..arg_end,
 *              at most STR_MAX-1 bytes, EVF_ARGS_TRUNC when longer;
 *   string 2 = working directory;
 *   string 3 = bprm->interp: the path as given to execve, or the
 *              interpreter as named on a #! line, at most STR_MAX-1 bytes.
 *              Its last component is the name an exec lock matches (see
 *              bpf/enforce), so the baseline learns names, not just files;
 *              string 0 alone says /bin/busybox for `sh`, `wget` and `nc`.
 *   flag memfd when the file is a memfd, upper when it has an overlayfs
 *   upper-layer copy (written or copied up inside the container). */

#define TMPFS_MAGIC 0x01021994
#define HUGETLBFS_MAGIC 0x958458f6
#define OVERLAYFS_SUPER_MAGIC 0x794c7630

static __always_inline void exe_flags(struct event *e, struct file *f)
{
	struct inode *ino = BPF_CORE_READ(f, f_inode);
	unsigned long magic = BPF_CORE_READ(ino, i_sb, s_magic);

	if (magic == TMPFS_MAGIC || magic == HUGETLBFS_MAGIC) {
		char name[6] = {};
		bpf_probe_read_kernel(name, sizeof(name), BPF_CORE_READ(f, f_path.dentry, d_name.name));
		if (name[0] == 'm' && name[1] == 'e' && name[2] == 'm' && name[3] == 'f' &&
		    name[4] == 'd' && name[5] == ':')
			e->flags |= EVF_EXE_MEMFD;
	}
	if (magic == OVERLAYFS_SUPER_MAGIC) {
		struct ovl_inode *oi = (void *)ino - bpf_core_field_offset(struct ovl_inode, vfs_inode);
		if (BPF_CORE_READ(oi, __upperdentry))
			e->flags |= EVF_EXE_UPPER;
	}
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	if (ignored())
		return 0;
	struct scratch *s = scratch_begin(EV_EXEC);
	if (!s)
		return 0;
	fill_task(&s->ev);

	struct file *f = BPF_CORE_READ(bprm, file);
	put_path(s, __builtin_preserve_access_index(&f->f_path));
	exe_flags(&s->ev, f);

	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	unsigned long start = BPF_CORE_READ(t, mm, arg_start);
	unsigned long end = BPF_CORE_READ(t, mm, arg_end);
	unsigned long len = end - start;
	if (end < start)
		len = 0;
	if (len > STR_MAX - 1) {
		len = STR_MAX - 1;
		s->ev.flags |= EVF_ARGS_TRUNC;
	}
	if (str_room(s)) {
		__u32 at = s->off;
		if (bpf_probe_read_user(&s->ev.data[at & OFF_MASK], len & (STR_MAX - 1), (void *)start) == 0)
			s->off = at + (len & (STR_MAX - 1));
		str_close(s, at);
	}

	struct fs_struct *fs = BPF_CORE_READ(t, fs);
	put_path(s, __builtin_preserve_access_index(&fs->pwd));

	if (str_room(s)) {
		__u32 at = s->off;
		long n = bpf_probe_read_kernel_str(&s->ev.data[at & OFF_MASK], STR_MAX, BPF_CORE_READ(bprm, interp));
		if (n > 0)
			s->off = at + n;
		str_close(s, at);
	}
	emit(s);
	return 0;
}

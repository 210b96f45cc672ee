//go:build ignore

/* sys_exit (raw syscall-exit tracepoint, BTF-typed): runs on every syscall
 * of every task, so it does the least possible work:
 *
 *   nr = saved syscall number;
 *   tail-call sys_exit_progs[nr];  an empty slot falls through at once.
 *
 * One hook plus a program table, rather than one tracepoint per syscall,
 * needs no tracefs mount and leaves unwatched syscalls a single indirect
 * jump. The table is filled at load from the initialiser below. */

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 512);
	__type(key, __u32);
	__array(values, int());
} sys_exit_progs SEC(".maps") = {
	.values = {
		/* x86-64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl). */
		[2] = (void *)&sys_open,
		[85] = (void *)&sys_creat,
		[257] = (void *)&sys_openat,
		[437] = (void *)&sys_openat2,
		[87] = (void *)&sys_unlink,
		[263] = (void *)&sys_unlinkat,
		[82] = (void *)&sys_rename,
		[264] = (void *)&sys_renameat,
		[316] = (void *)&sys_renameat2,
		[86] = (void *)&sys_link,
		[265] = (void *)&sys_linkat,
		[88] = (void *)&sys_symlink,
		[266] = (void *)&sys_symlinkat,
		[90] = (void *)&sys_chmod,
		[91] = (void *)&sys_fchmod,
		[268] = (void *)&sys_fchmodat,
		[452] = (void *)&sys_fchmodat2,

		[42] = (void *)&sys_connect,
		[43] = (void *)&sys_accept,
		[288] = (void *)&sys_accept4,
		[49] = (void *)&sys_bind,
		[50] = (void *)&sys_listen,
		[41] = (void *)&sys_socket,
		[33] = (void *)&sys_dup2,
		[292] = (void *)&sys_dup3,

		[105] = (void *)&sys_setuid,
		[106] = (void *)&sys_setgid,
		[113] = (void *)&sys_setreuid,
		[114] = (void *)&sys_setregid,
		[117] = (void *)&sys_setresuid,
		[119] = (void *)&sys_setresgid,
		[126] = (void *)&sys_capset,
		[101] = (void *)&sys_ptrace,
		[165] = (void *)&sys_mount,
		[166] = (void *)&sys_umount2,
		[272] = (void *)&sys_unshare,
		[308] = (void *)&sys_setns,
		[175] = (void *)&sys_init_module,
		[313] = (void *)&sys_finit_module,
		[319] = (void *)&sys_memfd_create,
		[429] = (void *)&sys_move_mount,
		[155] = (void *)&sys_pivot_root,
	},
};

SEC("tp_btf/sys_exit")
int BPF_PROG(on_sys_exit, struct pt_regs *regs, long ret)
{
	unsigned long nr = BPF_CORE_READ(regs, orig_ax);
	if (nr < 512)
		bpf_tail_call(ctx, &sys_exit_progs, nr);
	return 0;
}

//go:build ignore

/* BPF-LSM hooks: the first rung of the enforcement ladder. Each hook asks
 * the shared maps whether the calling task's workload denies this action:
 *
 *   workload := workloads[cgroup of current]          (0: not enforced)
 *   verdict  := deny map lookup for (workload, object)
 *               (exec: else the workload's lock verdict when it is
 *               locked and (file, exec'd name) is not on its allow-list)
 *   if verdict: record it; return -EPERM when mode is enforce, else allow
 *
 * A hook never overrides an earlier LSM's denial (ret != 0 passes through). */
#include "enforce.h"

static __always_inline int result(int ret, bool deny)
{
	return deny ? -EPERM : ret;
}

SEC("lsm/bprm_check_security")
int BPF_PROG(vigil_bprm_check, struct linux_binprm *bprm, int ret)
{
	if (ret)
		return ret;
	__u32 wl = current_workload();
	if (!wl)
		return 0;
	struct record r = {};
	r.kind = KIND_EXEC;
	r.backend = BACKEND_LSM;
	r.workload = wl;
	struct verdict *v = lookup_exec(wl, bprm->file, &r);
	if (!v) {
		/* A locked workload: anything off its allow-list is denied
		 * here, before the new image exists. */
		/* A #! script is no program of its own: the next round checks
		 * its interpreter, the file that ends up running, which is what
		 * profiles record and what exec_kill sees. */
		char magic[2] = {};
		bpf_probe_read_kernel(magic, sizeof(magic), bprm->buf);
		if (magic[0] == '#' && magic[1] == '!')
			return 0;
		__u32 flags = 0;
		v = lookup_lock(wl, bprm->file, bprm->interp, &r, &flags);
		if (!v)
			return 0;
	}
	bool deny = decide(v, &r);
	/* A "kill" verdict also kills the task that tried the exec. */
	if (deny && v->action == ACTION_KILL)
		bpf_send_signal(SIGKILL);
	return result(ret, deny);
}

SEC("lsm/file_open")
int BPF_PROG(vigil_file_open, struct file *file, int ret)
{
	if (ret)
		return ret;
	__u32 wl = current_workload();
	if (!wl)
		return 0;
	struct record r = {};
	r.kind = KIND_OPEN;
	r.backend = BACKEND_LSM;
	r.workload = wl;
	struct verdict *v = lookup_file(wl, KIND_OPEN, file, &r);
	if (!v)
		return 0;
	return result(ret, decide(v, &r));
}

SEC("lsm/socket_connect")
int BPF_PROG(vigil_socket_connect, struct socket *sock, struct sockaddr *address, int addrlen,
	     int ret)
{
	if (ret)
		return ret;
	__u32 wl = current_workload();
	if (!wl)
		return 0;
	struct record r = {};
	r.kind = KIND_CONNECT;
	r.backend = BACKEND_LSM;
	r.workload = wl;
	__u16 family = BPF_CORE_READ(address, sa_family);
	if (family == AF_INET) {
		if (addrlen < (int)sizeof(struct sockaddr_in))
			return 0;
		struct sockaddr_in *in = (struct sockaddr_in *)address;
		v4_mapped(r.addr, BPF_CORE_READ(in, sin_addr.s_addr));
		r.port = bpf_ntohs(BPF_CORE_READ(in, sin_port));
	} else if (family == AF_INET6) {
		if (addrlen < (int)sizeof(struct sockaddr_in6))
			return 0;
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)address;
		bpf_probe_read_kernel(r.addr, 16, &in6->sin6_addr);
		r.port = bpf_ntohs(BPF_CORE_READ(in6, sin6_port));
	} else {
		return 0;
	}
	struct verdict *v = lookup_net(wl, KIND_CONNECT, r.addr, r.port);
	if (!v)
		return 0;
	return result(ret, decide(v, &r));
}

static __always_inline int priv_hook(int ret, __u32 kind)
{
	if (ret)
		return ret;
	__u32 wl = current_workload();
	if (!wl)
		return 0;
	struct priv_key k = {.workload = wl, .kind = kind};
	struct verdict *v = bpf_map_lookup_elem(&priv_deny, &k);
	if (!v)
		return 0;
	struct record r = {};
	r.kind = kind;
	r.backend = BACKEND_LSM;
	r.workload = wl;
	return result(ret, decide(v, &r));
}

SEC("lsm/ptrace_access_check")
int BPF_PROG(vigil_ptrace, struct task_struct *child, unsigned int mode, int ret)
{
	return priv_hook(ret, KIND_PTRACE);
}

SEC("lsm/sb_mount")
int BPF_PROG(vigil_sb_mount, const char *dev_name, const struct path *path, const char *type,
	     unsigned long flags, void *data, int ret)
{
	return priv_hook(ret, KIND_MOUNT);
}

SEC("lsm/kernel_module_request")
int BPF_PROG(vigil_module_request, char *kmod_name, int ret)
{
	return priv_hook(ret, KIND_MODULE_LOAD);
}

/* kernel_read_file covers finit_module; it also sees firmware and kexec
 * reads, so only READING_MODULE counts as a module load. Its value is taken
 * from the running kernel's BTF (CO-RE enum relocation). */
SEC("lsm/kernel_read_file")
int BPF_PROG(vigil_kernel_read_file, struct file *file, enum kernel_read_file_id id, bool contents,
	     int ret)
{
	if (id != bpf_core_enum_value(enum kernel_read_file_id, READING_MODULE))
		return ret;
	return priv_hook(ret, KIND_MODULE_LOAD);
}

SEC("lsm/task_fix_setuid")
int BPF_PROG(vigil_task_fix_setuid, struct cred *new, const struct cred *old, int flags, int ret)
{
	return priv_hook(ret, KIND_SETUID);
}

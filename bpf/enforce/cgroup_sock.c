//go:build ignore

/* cgroup sock_addr programs: the network rung when BPF-LSM is missing.
 * Attached to each enforced workload's cgroup v2 directory; one shared set
 * of programs serves every workload because the verdict is looked up by
 * the workload id of the caller's cgroup:
 *
 *   connect4/6, sendmsg4/6: deny (workload, connect, dst addr, dst port)
 *   bind4/6:                deny (workload, bind, local addr, local port)
 *
 * Returning 0 makes the syscall fail with EPERM; 1 lets it through.
 * With BPF-LSM active, its socket_connect hook decides connects (and runs
 * first), so connect4/6 stand aside and only sendmsg and bind decide here. */
#include "enforce.h"

volatile const __u32 lsm_covers_connect = 0;

static __always_inline int check4(struct bpf_sock_addr *ctx, __u16 kind)
{
	__u32 wl = current_workload();
	if (!wl)
		return 1;
	struct record r = {};
	r.kind = kind;
	r.backend = BACKEND_CGROUP_SOCK;
	r.workload = wl;
	v4_mapped(r.addr, ctx->user_ip4);
	r.port = bpf_ntohs((__u16)ctx->user_port);
	struct verdict *v = lookup_net(wl, kind, r.addr, r.port);
	if (!v)
		return 1;
	return decide(v, &r) ? 0 : 1;
}

static __always_inline int check6(struct bpf_sock_addr *ctx, __u16 kind)
{
	__u32 wl = current_workload();
	if (!wl)
		return 1;
	struct record r = {};
	r.kind = kind;
	r.backend = BACKEND_CGROUP_SOCK;
	r.workload = wl;
	__u32 a0 = ctx->user_ip6[0], a1 = ctx->user_ip6[1], a2 = ctx->user_ip6[2],
	      a3 = ctx->user_ip6[3];
	__builtin_memcpy(r.addr, &a0, 4);
	__builtin_memcpy(r.addr + 4, &a1, 4);
	__builtin_memcpy(r.addr + 8, &a2, 4);
	__builtin_memcpy(r.addr + 12, &a3, 4);
	r.port = bpf_ntohs((__u16)ctx->user_port);
	struct verdict *v = lookup_net(wl, kind, r.addr, r.port);
	if (!v)
		return 1;
	return decide(v, &r) ? 0 : 1;
}

SEC("cgroup/connect4")
int vigil_connect4(struct bpf_sock_addr *ctx)
{
	if (lsm_covers_connect)
		return 1;
	return check4(ctx, KIND_CONNECT);
}

SEC("cgroup/connect6")
int vigil_connect6(struct bpf_sock_addr *ctx)
{
	if (lsm_covers_connect)
		return 1;
	return check6(ctx, KIND_CONNECT);
}

SEC("cgroup/sendmsg4")
int vigil_sendmsg4(struct bpf_sock_addr *ctx) { return check4(ctx, KIND_CONNECT); }

SEC("cgroup/sendmsg6")
int vigil_sendmsg6(struct bpf_sock_addr *ctx) { return check6(ctx, KIND_CONNECT); }

SEC("cgroup/bind4")
int vigil_bind4(struct bpf_sock_addr *ctx) { return check4(ctx, KIND_BIND); }

SEC("cgroup/bind6")
int vigil_bind6(struct bpf_sock_addr *ctx) { return check6(ctx, KIND_BIND); }

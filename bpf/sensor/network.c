//go:build ignore

/* Network syscalls, recorded at exit. Only IPv4/IPv6 sockets are reported
 * for connect, accept, bind and listen (AF_UNIX traffic is local plumbing).
 *   arg[0] = socket fd (accept: the new fd; dup: the target fd 0, 1 or 2)
 *   arg[1] = listen backlog
 *
 * connect:  destination from the user sockaddr, source and type from the
 *           socket (the kernel has bound it by now, also for EINPROGRESS).
 * accept:   both endpoints from the new socket.
 * bind:     local address from the user sockaddr.
 * listen:   local address from the socket.
 * socket:   only AF_PACKET (raw link-layer capture or injection).
 * dup2/3:   only when a socket lands on stdin, stdout or stderr: the
 *           reverse-shell shape. */

static __always_inline bool inet(__u16 family)
{
	return family == VIGIL_AF_INET || family == VIGIL_AF_INET6;
}

SYS_EXIT(connect)
{
	if (skip())
		return 0;
	__u8 addr[16] = {};
	__u16 port = 0;
	__u16 family = read_sockaddr((void *)A1, addr, &port);
	if (!family)
		return 0;
	struct scratch *s = begin(regs, ret, EV_CONNECT);
	if (!s)
		return 0;
	int fd = A0;
	fill_sock(&s->ev, sock_of(fd));
	s->ev.family = family;
	__builtin_memcpy(s->ev.daddr, addr, 16);
	s->ev.dport = port;
	s->ev.arg[0] = fd;
	emit(s);
	return 0;
}

static __always_inline int accept_event(struct pt_regs *regs, long ret)
{
	if (ret < 0 || skip())
		return 0;
	struct sock *sk = sock_of(ret);
	if (!sk || !inet(BPF_CORE_READ(sk, __sk_common.skc_family)))
		return 0;
	struct scratch *s = begin(regs, ret, EV_ACCEPT);
	if (!s)
		return 0;
	fill_sock(&s->ev, sk);
	s->ev.arg[0] = ret;
	emit(s);
	return 0;
}

SYS_EXIT(accept) { return accept_event(regs, ret); }
SYS_EXIT(accept4) { return accept_event(regs, ret); }

SYS_EXIT(bind)
{
	if (skip())
		return 0;
	__u8 addr[16] = {};
	__u16 port = 0;
	__u16 family = read_sockaddr((void *)A1, addr, &port);
	if (!family)
		return 0;
	struct scratch *s = begin(regs, ret, EV_BIND);
	if (!s)
		return 0;
	int fd = A0;
	struct sock *sk = sock_of(fd);
	if (sk) {
		s->ev.sock_type = BPF_CORE_READ(sk, sk_type);
		s->ev.proto = BPF_CORE_READ(sk, sk_protocol);
	}
	s->ev.family = family;
	__builtin_memcpy(s->ev.saddr, addr, 16);
	s->ev.sport = port;
	s->ev.arg[0] = fd;
	emit(s);
	return 0;
}

SYS_EXIT(listen)
{
	if (skip())
		return 0;
	int fd = A0;
	struct sock *sk = sock_of(fd);
	if (!sk || !inet(BPF_CORE_READ(sk, __sk_common.skc_family)))
		return 0;
	struct scratch *s = begin(regs, ret, EV_LISTEN);
	if (!s)
		return 0;
	fill_sock(&s->ev, sk);
	s->ev.arg[0] = fd;
	s->ev.arg[1] = A1;
	emit(s);
	return 0;
}

SYS_EXIT(socket)
{
	if (A0 != VIGIL_AF_PACKET || skip())
		return 0;
	struct scratch *s = begin(regs, ret, EV_PACKET_SOCKET);
	if (!s)
		return 0;
	s->ev.family = VIGIL_AF_PACKET;
	s->ev.sock_type = A1 & 0xf; /* strip SOCK_NONBLOCK/SOCK_CLOEXEC */
	s->ev.proto = bpf_ntohs((__u16)A2);
	s->ev.arg[0] = ret;
	emit(s);
	return 0;
}

static __always_inline int dup_event(struct pt_regs *regs, long ret)
{
	long newfd = A1;
	if (newfd < 0 || newfd > 2 || skip())
		return 0;
	struct sock *sk = sock_of(A0);
	if (!sk)
		return 0;
	struct scratch *s = begin(regs, ret, EV_DUP_SOCKET);
	if (!s)
		return 0;
	fill_sock(&s->ev, sk);
	s->ev.arg[0] = newfd;
	emit(s);
	return 0;
}

SYS_EXIT(dup2) { return dup_event(regs, ret); }
SYS_EXIT(dup3) { return dup_event(regs, ret); }

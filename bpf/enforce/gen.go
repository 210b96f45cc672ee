// Package enforce holds Vigil's enforcement BPF programs and their bpf2go
// output: BPF-LSM hooks (lsm.c), cgroup sock_addr programs (cgroup_sock.c)
// and the in-kernel exec SIGKILL tracepoint (exec_kill.c), which also carry
// out per-workload exec allow-lists (exec_lock, exec_allow). All three share
// the maps declared in enforce.h; guard/enforce creates those maps once and
// hands them to every object. deliver.c is a benchmark probe that stamps
// SIGKILL delivery; it is not an enforcement backend.
package enforce

//go:generate go tool bpf2go -cc clang-14 -cflags "-O2 -g -Wall -Werror" -target bpfel -type record -type verdict -type inode_key -type name_key -type net_key -type priv_key -type exec_allow_key Lsm lsm.c -- -I../include
//go:generate go tool bpf2go -cc clang-14 -cflags "-O2 -g -Wall -Werror" -target bpfel Cgroup cgroup_sock.c -- -I../include
//go:generate go tool bpf2go -cc clang-14 -cflags "-O2 -g -Wall -Werror" -target bpfel ExecKill exec_kill.c -- -I../include
//go:generate go tool bpf2go -cc clang-14 -cflags "-O2 -g -Wall -Werror" -target bpfel Deliver deliver.c -- -I../include

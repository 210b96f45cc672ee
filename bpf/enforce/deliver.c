//go:build ignore

/* Benchmark probe, not an enforcement backend: stamps the moment a SIGKILL
 * is dequeued for delivery (signal_deliver fires in get_signal() when the
 * killed task next runs), so kill latency can be measured in the kernel
 * from the decision record's timestamp to delivery:
 *
 *   delivered[tgid] = bpf_ktime_get_ns()  when sig == SIGKILL */
#include "../include/vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u64);
} delivered SEC(".maps");

SEC("tracepoint/signal/signal_deliver")
int vigil_signal_deliver(struct trace_event_raw_signal_deliver *ctx)
{
	if (ctx->sig != 9)
		return 0;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u64 now = bpf_ktime_get_ns();
	bpf_map_update_elem(&delivered, &tgid, &now, BPF_ANY);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

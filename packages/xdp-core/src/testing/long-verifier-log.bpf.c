// Rejected by the verifier only at its very end, after a long stretch of code, so that the verifier log runs to
// tens of kilobytes before the line that says what it refused: a packet read without a bounds check.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int long_log(struct xdp_md *ctx)
{
	volatile __u32 acc = ctx->ingress_ifindex;
#pragma clang loop unroll(full)
	for (int i = 0; i < 100; i++)
		acc = acc * 31 + i;
	// volatile: the read stays after the loop, where the verifier meets it last.
	volatile unsigned char *p = (unsigned char *)(long)ctx->data;
	return p[100] + acc;
}

char _license[] SEC("license") = "GPL";

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Every frame goes on to the kernel's stack. A veth delivers the frames that an XDP program sends out of it (XDP_TX
 * or a redirect) only while its peer has an XDP program in native mode, and this is the least such a program can do;
 * `flowlb check` points at it for peers that have none:
 *   ip link set dev PEER xdpdrv obj .../xdp_pass.bpf.o sec xdp
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Next-hop lookup for a rewritten IPv4/UDP datagram, and how each lookup failure is accounted for.
 */
#ifndef FLOWLB_FIB_H
#define FLOWLB_FIB_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "flowlb.h"
#include "nat.h"

#ifndef AF_INET
#define AF_INET 2
#endif

/*
 * Looks the route up as the packet will look once rewritten, before anything in the packet is written: on most
 * failures the packet must reach the kernel with its original bytes. The ports are given so that policy routing rules
 * matching on them apply; tot_len (host order) drives the kernel's MTU check.
 */
static __always_inline long fib_lookup_ipv4_udp(struct xdp_md *ctx, struct bpf_fib_lookup *fib,
					       const struct iphdr *iph, const struct nat_target *to)
{
	__builtin_memset(fib, 0, sizeof(*fib));
	fib->family = AF_INET;
	fib->l4_protocol = IPPROTO_UDP;
	fib->sport = to->src_port;
	fib->dport = to->dst_port;
	fib->tot_len = bpf_ntohs(iph->tot_len);
	fib->tos = iph->tos;
	fib->ipv4_src = to->src_addr;
	fib->ipv4_dst = to->dst_addr;
	fib->ifindex = ctx->ingress_ifindex;

	return bpf_fib_lookup(ctx, fib, sizeof(*fib), 0);
}

/*
 * Counter for a lookup that did not give a next hop. Negative returns (bad ifindex and the like) and codes newer than
 * this list end up in FIB_OTHER.
 */
static __always_inline __u32 fib_failure_stat(long rc)
{
	switch (rc) {
	case BPF_FIB_LKUP_RET_NO_NEIGH:
		return FLOWLB_STAT_FIB_NO_NEIGH;
	case BPF_FIB_LKUP_RET_BLACKHOLE:
	case BPF_FIB_LKUP_RET_UNREACHABLE:
	case BPF_FIB_LKUP_RET_PROHIBIT:
		return FLOWLB_STAT_FIB_UNREACHABLE;
	case BPF_FIB_LKUP_RET_NOT_FWDED:
	case BPF_FIB_LKUP_RET_FWD_DISABLED:
	case BPF_FIB_LKUP_RET_UNSUPP_LWT:
		return FLOWLB_STAT_FIB_NOT_FWDED;
	case BPF_FIB_LKUP_RET_FRAG_NEEDED:
		return FLOWLB_STAT_FIB_FRAG_NEEDED;
	default:
		return FLOWLB_STAT_FIB_OTHER;
	}
}

#endif /* FLOWLB_FIB_H */

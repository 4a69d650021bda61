/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Where a rewritten datagram goes next, with the FIB lookup cached. A lookup costs more than everything else a hit
 * does, and the answer changes only when a route, a neighbour, a link or an address does: the control plane watches
 * those (rtnetlink) and bumps nexthop_ctl.gen, which empties the cache on every CPU at once. Entries also expire after
 * FLOWLB_NEXTHOP_MAX_AGE_NS, so that a change the control plane missed (or made while none ran) is followed anyway.
 */
#ifndef FLOWLB_NEXTHOP_H
#define FLOWLB_NEXTHOP_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "flowlb.h"
#include "fib.h"
#include "maps.h"
#include "nat.h"

/*
 * The cache slot of a lookup key. Direct-mapped: two keys that share a slot take turns, each costing the other a
 * lookup, which is the uncached cost and nothing worse.
 */
static __always_inline __u32 nexthop_slot(__be32 dst, __be32 src, __u32 in_ifindex, __u8 tos)
{
	__u32 h = dst * 0x9e3779b1u;

	h ^= src * 0x85ebca77u;
	h ^= ((in_ifindex << 8) | tos) * 0xc2b2ae3du;
	h ^= h >> 16;
	return h & (FLOWLB_NEXTHOP_SLOTS - 1);
}

static __always_inline int nexthop_fresh(const struct flowlb_nexthop *nh, const struct flowlb_nexthop_ctl *ctl,
					 const struct nat_target *to, __u32 in_ifindex, __u8 tos, __u32 tot_len,
					 __u64 now)
{
	return !(ctl->flags & FLOWLB_NEXTHOP_CACHE_OFF) && nh->gen == ctl->gen + 1 && nh->dst_addr == to->dst_addr &&
	       nh->src_addr == to->src_addr && nh->in_ifindex == in_ifindex && nh->tos == tos &&
	       now - nh->filled_ns < FLOWLB_NEXTHOP_MAX_AGE_NS && tot_len <= nh->mtu;
}

/*
 * The next hop of `iph` once rewritten to `to`: a bpf_fib_lookup result in *rc, and on BPF_FIB_LKUP_RET_SUCCESS the
 * cache entry that holds the answer (this CPU's, valid until the program returns). On FRAG_NEEDED, *mtu is the
 * route's MTU. A datagram larger than the MTU a cached answer was made for is looked up again, so the kernel's MTU
 * check still decides.
 */
static __always_inline struct flowlb_nexthop *nexthop_lookup(struct xdp_md *ctx, const struct iphdr *iph,
							     const struct nat_target *to, __u64 now, long *rc,
							     __u16 *mtu)
{
	__u32 zero = 0;
	struct flowlb_nexthop_ctl *ctl = bpf_map_lookup_elem(&nexthop_ctl, &zero);
	__u32 in_ifindex = ctx->ingress_ifindex;
	__u32 tot_len = bpf_ntohs(iph->tot_len);
	__u8 tos = iph->tos;
	__u32 slot = nexthop_slot(to->dst_addr, to->src_addr, in_ifindex, tos);
	struct flowlb_nexthop *nh = bpf_map_lookup_elem(&nexthops, &slot);
	struct bpf_fib_lookup fib;
	__u32 egress;

	/* Neither can be missing; the verifier wants the checks all the same. */
	if (!ctl || !nh) {
		*rc = -1;
		return 0;
	}
	if (nexthop_fresh(nh, ctl, to, in_ifindex, tos, tot_len, now)) {
		*rc = BPF_FIB_LKUP_RET_SUCCESS;
		return nh;
	}

	*rc = fib_lookup_ipv4_udp(ctx, &fib, iph, to);
	if (*rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
		*mtu = fib.mtu_result;
	if (*rc != BPF_FIB_LKUP_RET_SUCCESS)
		return 0;

	egress = fib.ifindex;
	nh->dst_addr = to->dst_addr;
	nh->src_addr = to->src_addr;
	nh->in_ifindex = in_ifindex;
	nh->tos = tos;
	nh->xdp_egress = bpf_map_lookup_elem(&tx_ports, &egress) != 0;
	/*
	 * Since Linux 5.12 a successful lookup gives the route's MTU here. Before, the field still holds this datagram's
	 * length, which only makes larger datagrams look their route up again.
	 */
	nh->mtu = fib.mtu_result;
	nh->ifindex = egress;
	__builtin_memcpy(nh->dmac, fib.dmac, ETH_ALEN);
	__builtin_memcpy(nh->smac, fib.smac, ETH_ALEN);
	nh->filled_ns = now;
	/* With the cache off the entry is still written (the answer is returned in it), but never found fresh. */
	nh->gen = ctl->gen + 1;
	return nh;
}

#endif /* FLOWLB_NEXTHOP_H */

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ICMP destination unreachable about a flow's datagrams to its backend: the passive sign that the backend is down
 * (its port closed, its host gone) that the control plane's health checks take without waiting for a probe. No
 * socket holds a flow's SNAT port, so the kernel would drop such a message unread; the program counts it against the
 * backend's slot and passes it on untouched.
 */
#ifndef FLOWLB_ICMP_H
#define FLOWLB_ICMP_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "flowlb.h"
#include "parsing.h"
#include "maps.h"

/*
 * RFC 792 and RFC 1812 numbers, written here because <linux/icmp.h> pulls in libc headers a BPF build cannot take.
 */
#define ICMP_DEST_UNREACH 3
#define ICMP_NET_UNREACH 0
#define ICMP_HOST_UNREACH 1
#define ICMP_PORT_UNREACH 3
#define ICMP_NET_ANO 9
#define ICMP_HOST_ANO 10
#define ICMP_PKT_FILTERED 13
#define ICMP_FRAG_NEEDED 4
#define ICMP_TIME_EXCEEDED 11
#define ICMP_EXC_TTL 0

struct flowlb_icmphdr {
	__u8 type;
	__u8 code;
	__u16 checksum;
	__u32 rest; /* unused for destination unreachable, but for the next-hop MTU */
};

/* The codes that say the backend cannot be reached at all; the others (fragmentation needed, source route) do not. */
static __always_inline int icmp_unreach_code_counts(__u8 code)
{
	return code == ICMP_NET_UNREACH || code == ICMP_HOST_UNREACH || code == ICMP_PORT_UNREACH ||
	       code == ICMP_NET_ANO || code == ICMP_HOST_ANO || code == ICMP_PKT_FILTERED;
}

/*
 * `iph` is an ICMP datagram the cursor stands after the header of. If it is a destination unreachable quoting a UDP
 * datagram of a flow from its SNAT address to its backend, counts it for the backend's slot. A port unreachable comes
 * from the backend's own host, so one from anywhere else is forged and ignored; the others may come from a router on
 * the way. The quoted datagram must name a live flow exactly (SNAT address and port, backend address and port), which
 * a stranger has to guess.
 */
static __always_inline void icmp_count_unreachable(struct hdr_cursor *cur, const struct iphdr *iph)
{
	struct flowlb_icmphdr *icmp = cur->pos;
	struct iphdr *inner;
	struct udphdr *udp;
	struct flow_val *val;
	__u32 inner_len;
	__u32 flags;
	__u32 slot;
	struct flowlb_target_stats *ts;

	if (ipv4_is_fragment(iph))
		return;
	if ((void *)(icmp + 1) > cur->end)
		return;
	if (icmp->type != ICMP_DEST_UNREACH || !icmp_unreach_code_counts(icmp->code))
		return;

	inner = (void *)(icmp + 1);
	if ((void *)(inner + 1) > cur->end)
		return;
	if (inner->version != 4 || inner->protocol != IPPROTO_UDP)
		return;
	inner_len = inner->ihl * 4;
	if (inner_len < sizeof(*inner) || inner_len > 60)
		return;
	/* RFC 792 quotes 8 bytes past the IP header: the UDP ports are always there. */
	udp = (void *)inner + inner_len;
	if ((void *)udp + 4 > cur->end)
		return;
	if (icmp->code == ICMP_PORT_UNREACH && iph->saddr != inner->daddr)
		return;

	/* The quoted datagram went SNAT:P -> backend; the reverse entry is keyed by what the backend sends back. */
	val = flow_lookup(inner->saddr, inner->daddr, udp->source, udp->dest);
	if (!val)
		return;
	flags = *(volatile __u32 *)&val->flags;
	if (!(flags & FLOWLB_F_REVERSE))
		return;
	slot = (flags & FLOWLB_F_TARGET_MASK) >> FLOWLB_F_TARGET_SHIFT;
	if (!slot)
		return;
	ts = bpf_map_lookup_elem(&target_stats, &slot);
	if (ts)
		ts->icmp_unreachable += 1;
}

#endif /* FLOWLB_ICMP_H */

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * flowlb's fast path: IPv4/UDP datagrams of known flows, and the fragments of their datagrams, are rewritten to their
 * target and sent out again from XDP, to the next hop the per-CPU cache (nexthop.h) or the kernel's FIB gives. The
 * one drop here is of new clients' datagrams to a VIP beyond the rate limits the control plane set (none by default).
 * The answers are the DTLS HelloVerifyRequest of a VIP that asks for it, and the ICMP errors a router sends (time
 * exceeded, fragmentation needed). A packet of a known flow this program cannot send is the kernel's to forward
 * (rewritten) or to deliver (as it came), and each packet is counted once, under the reason it took its path.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "flowlb.h"
#include "parsing.h"
#include "csum.h"
#include "nat.h"
#include "fib.h"
#include "nexthop.h"
#include "icmp_reply.h"
#include "maps.h"
#include "clock.h"
#include "limits.h"
#include "hello_verify.h"
#include "icmp.h"

static __always_inline __u32 parse_failure_stat(enum parse_result r)
{
	return r == PARSE_UNEXPECTED ? FLOWLB_STAT_NOT_IPV4_UDP : FLOWLB_STAT_MALFORMED;
}

/* Where a fragment's datagram came from, as the frags map knows it. */
static __always_inline struct flowlb_frag_key frag_key_of(const struct iphdr *iph)
{
	struct flowlb_frag_key key = { .src_addr = iph->saddr, .dst_addr = iph->daddr, .id = iph->id, .pad = 0 };

	return key;
}

/* Recorded before the first fragment is rewritten, so that the later ones find how. */
static __always_inline void frag_remember(const struct iphdr *iph, const struct nat_target *to, __u32 flags, __u64 now)
{
	struct flowlb_frag_key key = frag_key_of(iph);
	struct flowlb_frag f = {
		.dst_addr = to->dst_addr,
		.src_addr = to->src_addr,
		.flags = flags,
		.pad = 0,
		.seen_ns = now,
	};

	bpf_map_update_elem(&frags, &key, &f, BPF_ANY);
}

/* The rewrite of a datagram (udph set) or of a fragment after the first (udph 0, addresses only). */
static __always_inline void rewrite(struct iphdr *iph, struct udphdr *udph, const struct nat_target *to, int dec_ttl)
{
	if (udph)
		nat_rewrite_ipv4_udp(iph, udph, to, dec_ttl);
	else
		nat_rewrite_ipv4_fragment(iph, to, dec_ttl);
}

/*
 * A packet of a known flow (or fragment of one) that may be forwarded: rewritten to `to` and sent to its next hop.
 * `udph` is 0 for a fragment after the first; `frag` says whether the packet is a fragment at all. Where the program
 * cannot send it, the kernel gets it: rewritten when the kernel can forward it (it decrements TTL itself then, and
 * the Ethernet header stays addressed to this host so that the kernel takes the frame in), as it came otherwise,
 * addressed to the VIP or a SNAT address for local delivery. The per-target counters take every packet that leaves
 * rewritten, by the program or by the kernel.
 */
static __always_inline int forward(struct xdp_md *ctx, struct ethhdr *eth, struct iphdr *iph, struct udphdr *udph,
				   const struct nat_target *to, __u32 flags, __u64 now, int frag, __u32 *stat)
{
	/* Read before any helper call: after one that may resize the frame, the verifier trusts no packet pointer. */
	__u32 ip_len = bpf_ntohs(iph->tot_len);
	int first = frag && udph;
	struct flowlb_nexthop *nh;
	__u16 mtu = 0;
	long rc;

	nh = nexthop_lookup(ctx, iph, to, now, &rc, &mtu);
	if (nh && nh->xdp_egress) {
		if (first)
			frag_remember(iph, to, flags, now);
		rewrite(iph, udph, to, 1);
		__builtin_memcpy(eth->h_dest, nh->dmac, ETH_ALEN);
		__builtin_memcpy(eth->h_source, nh->smac, ETH_ALEN);
		if (frag)
			*stat = FLOWLB_STAT_FRAGMENT_FWD;
		else
			*stat = (flags & FLOWLB_F_REVERSE) ? FLOWLB_STAT_REV_HIT : FLOWLB_STAT_FWD_HIT;
		target_count(flags, ip_len);
		if (nh->ifindex == ctx->ingress_ifindex)
			return XDP_TX;
		/*
		 * An interface removed from tx_ports since the lookup gives XDP_PASS: the kernel drops the frame, addressed to
		 * the next hop by now. A change of tx_ports drops the cache, so only packets in flight meet this.
		 */
		return bpf_redirect_map(&tx_ports, nh->ifindex, XDP_PASS);
	}

	if (nh) {
		*stat = FLOWLB_STAT_EGRESS_NO_XDP;
	} else if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		/* The route exists but the next hop's MAC is unknown: the kernel resolves ARP on the way. */
		*stat = FLOWLB_STAT_FIB_NO_NEIGH;
	} else if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED) {
		*stat = FLOWLB_STAT_FIB_FRAG_NEEDED;
		/* A router answers DF with the MTU it needs; without DF the kernel fragments it on the way. */
		if (ipv4_dont_fragment(iph))
			return icmp_error_reply(ctx, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, mtu) == 0 ? XDP_TX : XDP_PASS;
	} else {
		*stat = fib_failure_stat(rc);
		return XDP_PASS;
	}
	if (first)
		frag_remember(iph, to, flags, now);
	rewrite(iph, udph, to, 0);
	target_count(flags, ip_len);
	return XDP_PASS;
}

/*
 * A fragment after the first has no ports: it is known only by the datagram its first fragment opened, and goes where
 * that one went. Returns the entry, or 0 when the first has not come (or came long ago): the kernel's reassembly then
 * holds it, as without this map.
 */
static __always_inline struct flowlb_frag *frag_lookup(const struct iphdr *iph, __u64 now)
{
	struct flowlb_frag_key key = frag_key_of(iph);
	struct flowlb_frag *f = bpf_map_lookup_elem(&frags, &key);

	/* Stamped by another CPU, whose clock may be a tick ahead of this one's: a stamp in the future is fresh. */
	if (!f || (now > f->seen_ns && now - f->seen_ns > FLOWLB_FRAG_MAX_AGE_NS))
		return 0;
	return f;
}

/* A datagram of no known flow: the control plane's, unless the VIP's cookie exchange or rate limits take it here. */
static __always_inline int flowlb_miss(struct xdp_md *ctx, struct iphdr *iph, struct udphdr *udph, __u64 now,
				       __u32 *stat)
{
	struct flowlb_hello_verify *hv = hello_verify_config(iph->daddr, udph->dest);
	/* Read first: after a call that may resize the frame, the verifier trusts no packet pointer. */
	int limited = is_vip(iph->daddr, udph->dest);
	__be32 saddr = iph->saddr;

	/* Before the rate limits: an answered hello costs the control plane nothing to protect. */
	if (hv && hello_verify_answer(ctx, hv)) {
		*stat = FLOWLB_STAT_HELLO_VERIFY;
		return XDP_TX;
	}
	if (limited && !new_client_allowed(saddr, now)) {
		*stat = FLOWLB_STAT_RATE_LIMITED;
		return XDP_DROP;
	}
	*stat = FLOWLB_STAT_MISS;
	return XDP_PASS;
}

static __always_inline int flowlb_process(struct xdp_md *ctx, __u32 *stat)
{
	struct hdr_cursor cur;
	struct ethhdr *eth;
	struct iphdr *iph;
	struct udphdr *udph;
	struct flow_val *val;
	struct nat_target to;
	enum parse_result r;
	__u32 flags;
	__u64 now;
	int frag;

	cursor_init(&cur, ctx);

	r = parse_ethhdr(&cur, &eth);
	if (r != PARSE_OK) {
		*stat = parse_failure_stat(r);
		return XDP_PASS;
	}

	r = parse_ipv4hdr(&cur, &iph);
	if (r != PARSE_OK) {
		*stat = parse_failure_stat(r);
		return XDP_PASS;
	}
	if (iph->protocol != IPPROTO_UDP) {
		if (iph->protocol == IPPROTO_ICMP)
			icmp_count_unreachable(&cur, iph);
		*stat = FLOWLB_STAT_NOT_IPV4_UDP;
		return XDP_PASS;
	}

	now = flowlb_now();
	frag = ipv4_is_fragment(iph);
	/* Before the UDP header: a later fragment has none, and its first bytes are payload. */
	if (frag && ipv4_is_later_fragment(iph)) {
		struct flowlb_frag *f = frag_lookup(iph, now);

		if (!f) {
			*stat = FLOWLB_STAT_FRAGMENT;
			return XDP_PASS;
		}
		__builtin_memset(&to, 0, sizeof(to));
		to.dst_addr = f->dst_addr;
		to.src_addr = f->src_addr;
		flags = f->flags;
		udph = 0;
		/* No ICMP error is sent about a fragment other than the first (RFC 1122, 3.2.2). */
		if (iph->ttl <= 1) {
			*stat = FLOWLB_STAT_TTL;
			return XDP_PASS;
		}
	} else {
		r = parse_udphdr(&cur, &udph, ipv4_payload_len(iph), frag);
		if (r != PARSE_OK) {
			*stat = parse_failure_stat(r);
			return XDP_PASS;
		}

		val = flow_lookup(iph->daddr, iph->saddr, udph->dest, udph->source);
		if (!val && frag) {
			/* A new flow's first datagram in fragments: the kernel reassembles it for the control plane. */
			*stat = FLOWLB_STAT_FRAGMENT;
			return XDP_PASS;
		}
		if (!val)
			return flowlb_miss(ctx, iph, udph, now, stat);

		/* Any packet of the flow shows it is alive, whether or not this program can forward it. */
		flow_touch(val, now);
		flags = flow_confirm(val);

		to.dst_addr = val->dst_addr;
		to.src_addr = val->src_addr;
		to.dst_port = val->dst_port;
		to.src_port = val->src_port;

		/* A router's answer; were it forwarded, the kernel would answer it in the name of the rewritten source. */
		if (iph->ttl <= 1) {
			*stat = FLOWLB_STAT_TTL;
			return icmp_error_reply(ctx, ICMP_TIME_EXCEEDED, ICMP_EXC_TTL, 0) == 0 ? XDP_TX : XDP_PASS;
		}
	}
	return forward(ctx, eth, iph, udph, &to, flags, now, frag, stat);
}

SEC("xdp")
int flowlb_xdp(struct xdp_md *ctx)
{
	/* Every path of flowlb_process sets it; the initial value only keeps the compiler and verifier content. */
	__u32 stat = FLOWLB_STAT_FIB_OTHER;
	int action = flowlb_process(ctx, &stat);

	stats_inc(stat);
	return action;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * flowlb's fast path: IPv4/UDP datagrams of known flows are rewritten to their target and sent out again from XDP.
 * Everything else reaches the kernel untouched, where the control plane picks up new flows on the VIP. The one drop
 * here is of new clients' datagrams to a VIP beyond the rate limits the control plane set (none by default), and the
 * one answer is the DTLS HelloVerifyRequest of a VIP that asks for it: a packet of a known flow this program cannot
 * forward is the kernel's to handle, and each packet is counted once, under the reason it took its path.
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
#include "maps.h"
#include "limits.h"
#include "hello_verify.h"
#include "icmp.h"

static __always_inline __u32 parse_failure_stat(enum parse_result r)
{
	return r == PARSE_UNEXPECTED ? FLOWLB_STAT_NOT_IPV4_UDP : FLOWLB_STAT_MALFORMED;
}

static __always_inline int flowlb_process(struct xdp_md *ctx, __u32 *stat)
{
	struct bpf_fib_lookup fib;
	struct hdr_cursor cur;
	struct ethhdr *eth;
	struct iphdr *iph;
	struct udphdr *udph;
	struct flow_val *val;
	struct nat_target to;
	enum parse_result r;
	__u32 ip_len;
	__u32 flags;
	long rc;

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
	/* Before the UDP header: a later fragment has none, and its first bytes are payload. */
	if (ipv4_is_fragment(iph)) {
		*stat = FLOWLB_STAT_FRAGMENT;
		return XDP_PASS;
	}

	r = parse_udphdr(&cur, &udph, ipv4_payload_len(iph));
	if (r != PARSE_OK) {
		*stat = parse_failure_stat(r);
		return XDP_PASS;
	}

	val = flow_lookup(iph->daddr, iph->saddr, udph->dest, udph->source);
	if (!val) {
		struct flowlb_hello_verify *hv = hello_verify_config(iph->daddr, udph->dest);
		/* Read first: after a call that may resize the frame, the verifier trusts no packet pointer. */
		int limited = is_vip(iph->daddr, udph->dest);
		__be32 saddr = iph->saddr;

		/* Before the rate limits: an answered hello costs the control plane nothing to protect. */
		if (hv && hello_verify_answer(ctx, hv)) {
			*stat = FLOWLB_STAT_HELLO_VERIFY;
			return XDP_TX;
		}
		if (limited && !new_client_allowed(saddr, bpf_ktime_get_coarse_ns())) {
			*stat = FLOWLB_STAT_RATE_LIMITED;
			return XDP_DROP;
		}
		*stat = FLOWLB_STAT_MISS;
		return XDP_PASS;
	}

	/* Any packet of the flow shows it is alive, whether or not this program can forward it. */
	flow_touch(val);
	flags = flow_confirm(val);

	/*
	 * The per-target byte count, which no rewrite changes. Read before the helper calls below: were one of them ever
	 * to resize the frame, the verifier would trust no packet pointer after it.
	 */
	ip_len = bpf_ntohs(iph->tot_len);

	to.dst_addr = val->dst_addr;
	to.src_addr = val->src_addr;
	to.dst_port = val->dst_port;
	to.src_port = val->src_port;

	/*
	 * Forwarding it would need an ICMP time exceeded this program does not build. Untouched, it is addressed to the VIP
	 * or a SNAT address, so the kernel delivers it locally and the control plane decides.
	 */
	if (iph->ttl <= 1) {
		*stat = FLOWLB_STAT_TTL;
		return XDP_PASS;
	}

	rc = fib_lookup_ipv4_udp(ctx, &fib, iph, &to);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		nat_rewrite_ipv4_udp(iph, udph, &to, 1);
		__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
		__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
		*stat = (flags & FLOWLB_F_REVERSE) ? FLOWLB_STAT_REV_HIT : FLOWLB_STAT_FWD_HIT;
		target_count(flags, ip_len);
		if (fib.ifindex == ctx->ingress_ifindex)
			return XDP_TX;
		return bpf_redirect(fib.ifindex, 0);
	}

	*stat = fib_failure_stat(rc);
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		/*
		 * The route exists but the next hop's MAC is unknown: the kernel forwards the rewritten packet and resolves
		 * ARP on the way. It decrements TTL itself, and the Ethernet header stays addressed to this host so that the
		 * kernel takes the frame in.
		 */
		nat_rewrite_ipv4_udp(iph, udph, &to, 0);
		/* The kernel sends it on as rewritten here, so the target's counters take it as the hits above. */
		target_count(flags, ip_len);
	}
	/* Other failures keep the original bytes: addressed to the VIP or a SNAT address, the packet is delivered locally. */
	return XDP_PASS;
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

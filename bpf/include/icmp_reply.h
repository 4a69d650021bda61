/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ICMP errors the program sends where a router would: time exceeded for a known flow's datagram whose TTL runs out
 * here, fragmentation needed for one too large for the egress MTU with DF set.
 *
 * The error is made in place from the datagram it is about (RFC 792, RFC 1812 4.3.2.3). What it quotes, the IP header
 * with its options and the first 8 bytes of the payload, starts right after the Ethernet header; moving the start of
 * the frame 28 bytes ahead (an IP header without options and the ICMP header) leaves the quote exactly where the error
 * carries it. No byte of the quote is copied: only the 42 bytes in front of it are written, and what follows it (the
 * rest of the datagram, any Ethernet padding) is cut off, so the reply is never more than 28 bytes longer than the
 * frame that came. The quote is the 8 bytes RFC 792 asks for, not the most that would fit in 576 bytes (RFC 1812 says
 * SHOULD): with UDP they hold the ports the sender finds its socket by, and the checksum stays a sum of at most 76
 * bytes that the verifier walks word by word.
 */
#ifndef FLOWLB_ICMP_REPLY_H
#define FLOWLB_ICMP_REPLY_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "flowlb.h"
#include "csum.h"
#include "parsing.h"
#include "icmp.h"
#include "maps.h"

/* What the reply puts in front of the quote, and by how much it moves the start of the frame. */
#define ICMP_REPLY_GROW (sizeof(struct iphdr) + sizeof(struct flowlb_icmphdr))
#define ICMP_REPLY_HDRS (sizeof(struct ethhdr) + ICMP_REPLY_GROW)
/* Bytes of the datagram's payload quoted after its IP header: with UDP, its whole header (RFC 792). */
#define ICMP_QUOTE_PAYLOAD 8
#define ICMP_QUOTE_MAX (60 + ICMP_QUOTE_PAYLOAD)
#define ICMP_REPLY_TTL 64
/* Precedence "internetwork control", as Linux sends its own ICMP errors. */
#define ICMP_REPLY_TOS 0xc0

/*
 * RFC 1812 4.3.2.7: no error about a frame sent to a link-layer group address, a datagram to a group or the limited
 * broadcast address, one from a source that cannot be answered (0/8, loopback, multicast, class E, broadcast), or a
 * fragment other than the first. The kernel, which gets such a datagram instead, sends none either.
 */
static __always_inline int icmp_error_allowed(const struct ethhdr *eth, const struct iphdr *iph)
{
	/* The first octet of each address: network byte order keeps it first in memory. */
	__u8 src_net = *(const __u8 *)&iph->saddr;
	__u8 dst_net = *(const __u8 *)&iph->daddr;

	if (eth->h_dest[0] & 1)
		return 0;
	if (dst_net >= 224)
		return 0;
	if (src_net == 0 || src_net == 127 || src_net >= 224)
		return 0;
	return !ipv4_is_later_fragment(iph);
}

/*
 * RFC 1812 4.3.2.8: a router limits the rate of its ICMP errors. As the kernel's own defaults (net.ipv4.icmp_msgs_per_sec
 * and icmp_msgs_burst), per CPU so that no CPU waits for another: beyond it the datagram goes to the kernel as it came.
 */
#define FLOWLB_ICMP_RATE 1000
#define FLOWLB_ICMP_BURST 50
#define FLOWLB_ICMP_NS_PER_SEC 1000000000ULL

static __always_inline int icmp_budget_take(void)
{
	__u32 zero = 0;
	struct flowlb_bucket *b = bpf_map_lookup_elem(&icmp_budget, &zero);
	__u64 now = bpf_ktime_get_coarse_ns();
	__u64 add;

	if (!b)
		return 0;
	/* Idle for a second or more (or never used): the bucket is full, and the product below cannot overflow. */
	if (now - b->stamp_ns >= FLOWLB_ICMP_NS_PER_SEC) {
		b->tokens = FLOWLB_ICMP_BURST;
		b->stamp_ns = now;
	} else {
		add = (now - b->stamp_ns) * FLOWLB_ICMP_RATE / FLOWLB_ICMP_NS_PER_SEC;
		if (add > 0) {
			b->tokens = b->tokens + add > FLOWLB_ICMP_BURST ? FLOWLB_ICMP_BURST : b->tokens + add;
			/* Whole tokens only: the time they took is kept, the remainder carries over. */
			b->stamp_ns += add * FLOWLB_ICMP_NS_PER_SEC / FLOWLB_ICMP_RATE;
		}
	}
	if (b->tokens == 0)
		return 0;
	b->tokens -= 1;
	return 1;
}

/*
 * Adds to *sum the `len` bytes at `p` (a multiple of 4, at most ICMP_QUOTE_MAX) as 32-bit words in memory order, which
 * folds to the same one's complement sum as 16-bit words in network order (RFC 1071). Returns -1, *sum half done,
 * when the packet ends first. Every word is checked on its own: the verifier cannot prove a length known only at
 * run time against the packet's end any other way.
 */
static __always_inline int icmp_sum_words(const void *p, const void *end, __u32 len, __u64 *sum)
{
	int i;

#pragma unroll
	for (i = 0; i < ICMP_QUOTE_MAX / 4; i++) {
		const __u32 *w = p + i * 4;

		if (i * 4 >= len)
			break;
		if ((const void *)(w + 1) > end)
			return -1;
		*sum += *w;
	}
	return 0;
}

/*
 * Turns the frame, a datagram as it arrived, into an ICMP error about it addressed back to its sender. Returns 0 when
 * the frame now holds the reply (to send with XDP_TX), -1 when it was left as it came. `mtu` is the next-hop MTU of
 * a fragmentation needed (RFC 1191), 0 for any other error.
 */
static __always_inline int icmp_error_reply(struct xdp_md *ctx, __u8 type, __u8 code, __u16 mtu)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	struct ethhdr *came;
	struct iphdr *quoted;
	struct flowlb_icmphdr *icmp;
	__u32 quote, frame_len;
	__u64 sum = 0;

	if ((void *)(iph + 1) > end)
		return -1;
	quote = iph->ihl * 4;
	if (quote < sizeof(*iph))
		return -1;
	if (!icmp_error_allowed(eth, iph))
		return -1;
	quote += ICMP_QUOTE_PAYLOAD;
	/*
	 * The quote's share of the ICMP checksum, taken where it lies now: a frame too short for it (which a UDP
	 * datagram's never is) is still as it came.
	 */
	if (icmp_sum_words(iph, end, quote, &sum))
		return -1;
	/* Last: only an error that would be sent takes from the allowance. */
	if (!icmp_budget_take())
		return -1;
	/* The whole frame: a program not loaded for multi-buffer frames (xdp.frags) gets them linear. */
	frame_len = end - data;

	if (bpf_xdp_adjust_head(ctx, -(int)ICMP_REPLY_GROW))
		return -1;
	if (bpf_xdp_adjust_tail(ctx, (int)(ICMP_REPLY_HDRS + quote) - (int)(frame_len + ICMP_REPLY_GROW))) {
		/* Nothing has been written: moving the start back gives the frame as it came. */
		bpf_xdp_adjust_head(ctx, ICMP_REPLY_GROW);
		return -1;
	}

	/* After either call the verifier trusts no packet pointer: all are derived and checked again. */
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	/* Never taken (the quote, at least 28 bytes, follows the headers); the verifier needs to see it. */
	if (data + ICMP_REPLY_HDRS + sizeof(struct iphdr) > end)
		return -1;
	eth = data;
	iph = (void *)(eth + 1);
	icmp = (void *)(iph + 1);
	quoted = (void *)(icmp + 1);
	/* The frame's own Ethernet header, moved along with everything else; the new headers cover it. */
	came = data + ICMP_REPLY_GROW;

	/* Read before the IP and ICMP headers overwrite them: the MACs swapped, back the way the frame came. */
	__builtin_memcpy(eth->h_dest, came->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, came->h_dest, ETH_ALEN);
	eth->h_proto = bpf_htons(ETH_P_IP);

	iph->version = 4;
	iph->ihl = 5;
	iph->tos = ICMP_REPLY_TOS;
	iph->tot_len = bpf_htons(ICMP_REPLY_GROW + quote);
	iph->id = 0;
	iph->frag_off = 0;
	iph->ttl = ICMP_REPLY_TTL;
	iph->protocol = IPPROTO_ICMP;
	iph->check = 0;
	/* From the address the datagram was sent to (the VIP or a SNAT address), back to its source. */
	iph->saddr = quoted->daddr;
	iph->daddr = quoted->saddr;
	iph->check = csum_finish64(csum_add_words32(iph, sizeof(*iph), 0));

	icmp->type = type;
	icmp->code = code;
	icmp->checksum = 0;
	/* RFC 1191: the next-hop MTU in the low 16 bits, the high ones unused and 0; all 4 unused otherwise. */
	icmp->rest = bpf_htonl((__u32)mtu);
	icmp->checksum = csum_finish64(csum_add_words32(icmp, sizeof(*icmp), sum));
	return 0;
}

#endif /* FLOWLB_ICMP_REPLY_H */

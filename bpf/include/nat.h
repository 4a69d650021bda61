/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Address and port rewriting of an IPv4/UDP datagram in place, with both checksums kept valid incrementally. The
 * payload is never touched, so its length and any Ethernet padding behind it stay as they came in.
 */
#ifndef FLOWLB_NAT_H
#define FLOWLB_NAT_H

#include <linux/types.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "csum.h"

/* Where a flow's packets are rewritten to; a copy of the flow value's first fields. */
struct nat_target {
	__be32 dst_addr;
	__be32 src_addr;
	__be16 dst_port;
	__be16 src_port;
};

/* TTL shares its 16-bit checksum word with the protocol byte. */
static __always_inline __u16 ipv4_ttl_word(const struct iphdr *iph, __u8 ttl)
{
	return bpf_htons(((__u16)ttl << 8) | iph->protocol);
}

/*
 * dec_ttl is false when the kernel will forward the packet itself (no neighbour yet): it decrements TTL on its own,
 * and doing it here too would cost the packet a hop.
 */
static __always_inline void nat_rewrite_ipv4_udp(struct iphdr *iph, struct udphdr *udph, const struct nat_target *to,
						 int dec_ttl)
{
	csum_delta_t addr_delta = 0, ip_delta, udp_delta;

	/* The addresses are in both checksums: in the IP header and in UDP's pseudo-header. */
	addr_delta = csum_delta_add32(addr_delta, iph->saddr, to->src_addr);
	addr_delta = csum_delta_add32(addr_delta, iph->daddr, to->dst_addr);

	ip_delta = addr_delta;
	if (dec_ttl) {
		__u8 ttl = iph->ttl;

		ip_delta = csum_delta_add16(ip_delta, ipv4_ttl_word(iph, ttl), ipv4_ttl_word(iph, ttl - 1));
		iph->ttl = ttl - 1;
	}

	udp_delta = csum_delta_add16(addr_delta, udph->source, to->src_port);
	udp_delta = csum_delta_add16(udp_delta, udph->dest, to->dst_port);

	iph->check = csum_apply(iph->check, ip_delta);
	udph->check = udp_csum_apply(udph->check, udp_delta);

	iph->saddr = to->src_addr;
	iph->daddr = to->dst_addr;
	udph->source = to->src_port;
	udph->dest = to->dst_port;
}

#endif /* FLOWLB_NAT_H */

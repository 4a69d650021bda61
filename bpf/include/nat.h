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
 * The IP header's part of a rewrite: addresses, TTL and the header checksum. `addr_delta` is the addresses' change,
 * which the caller also applies to UDP's pseudo-header where there is a UDP header.
 */
static __always_inline void nat_rewrite_ipv4_header(struct iphdr *iph, __be32 src, __be32 dst, csum_delta_t addr_delta,
						    int dec_ttl)
{
	csum_delta_t ip_delta = addr_delta;

	if (dec_ttl) {
		__u8 ttl = iph->ttl;

		ip_delta = csum_delta_add16(ip_delta, ipv4_ttl_word(iph, ttl), ipv4_ttl_word(iph, ttl - 1));
		iph->ttl = ttl - 1;
	}
	iph->check = csum_apply(iph->check, ip_delta);
	iph->saddr = src;
	iph->daddr = dst;
}

static __always_inline csum_delta_t nat_addr_delta(const struct iphdr *iph, const struct nat_target *to)
{
	csum_delta_t delta = csum_delta_add32(0, iph->saddr, to->src_addr);

	return csum_delta_add32(delta, iph->daddr, to->dst_addr);
}

/*
 * A fragment after the first carries no UDP header: only the addresses change. The UDP checksum, in the first
 * fragment, was updated for the whole datagram's new addresses and ports when that fragment went through.
 */
static __always_inline void nat_rewrite_ipv4_fragment(struct iphdr *iph, const struct nat_target *to, int dec_ttl)
{
	nat_rewrite_ipv4_header(iph, to->src_addr, to->dst_addr, nat_addr_delta(iph, to), dec_ttl);
}

/*
 * dec_ttl is false when the kernel will forward the packet itself (no neighbour yet): it decrements TTL on its own,
 * and doing it here too would cost the packet a hop.
 */
static __always_inline void nat_rewrite_ipv4_udp(struct iphdr *iph, struct udphdr *udph, const struct nat_target *to,
						 int dec_ttl)
{
	/* The addresses are in both checksums: in the IP header and in UDP's pseudo-header. */
	csum_delta_t addr_delta = nat_addr_delta(iph, to);
	csum_delta_t udp_delta;

	udp_delta = csum_delta_add16(addr_delta, udph->source, to->src_port);
	udp_delta = csum_delta_add16(udp_delta, udph->dest, to->dst_port);
	udph->check = udp_csum_apply(udph->check, udp_delta);
	udph->source = to->src_port;
	udph->dest = to->dst_port;

	nat_rewrite_ipv4_header(iph, to->src_addr, to->dst_addr, addr_delta, dec_ttl);
}

#endif /* FLOWLB_NAT_H */

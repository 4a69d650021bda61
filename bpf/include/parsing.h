/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Bounds-checked header parsing for XDP. A cursor walks the frame; every step proves to the verifier that the header
 * it returns lies inside the packet before anything reads it. Lengths are taken from the headers themselves and never
 * from the frame's end, because frames may carry Ethernet padding after the IP datagram.
 */
#ifndef FLOWLB_PARSING_H
#define FLOWLB_PARSING_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct hdr_cursor {
	void *pos;
	void *end;
};

/* Result of a parse step. Anything but PARSE_OK leaves the cursor where it was. */
enum parse_result {
	PARSE_OK = 0,
	PARSE_MALFORMED,  /* truncated header or lengths that contradict each other */
	PARSE_UNEXPECTED, /* well formed, but a protocol flowlb does not handle */
};

#define IPV4_DF 0x4000
#define IPV4_MF 0x2000
#define IPV4_OFFSET_MASK 0x1fff

static __always_inline void cursor_init(struct hdr_cursor *c, struct xdp_md *ctx)
{
	c->pos = (void *)(long)ctx->data;
	c->end = (void *)(long)ctx->data_end;
}

/*
 * Only untagged IPv4 is accepted: a VLAN tag would have to be kept on the way out and fib lookups do not see it, so
 * tagged frames are left to the kernel like any other protocol.
 */
static __always_inline enum parse_result parse_ethhdr(struct hdr_cursor *c, struct ethhdr **eth_out)
{
	struct ethhdr *eth = c->pos;

	if ((void *)(eth + 1) > c->end)
		return PARSE_MALFORMED;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return PARSE_UNEXPECTED;

	*eth_out = eth;
	c->pos = eth + 1;
	return PARSE_OK;
}

/*
 * IPv4 header of any length (IHL 5..15, options are carried along untouched). The datagram that tot_len announces must
 * fit in what the frame holds; a frame longer than that is padding and is kept as it is.
 */
static __always_inline enum parse_result parse_ipv4hdr(struct hdr_cursor *c, struct iphdr **iph_out)
{
	struct iphdr *iph = c->pos;
	__u32 hdr_len, tot_len;

	if ((void *)(iph + 1) > c->end)
		return PARSE_MALFORMED;
	if (iph->version != 4)
		return PARSE_UNEXPECTED;

	hdr_len = iph->ihl * 4;
	if (hdr_len < sizeof(*iph))
		return PARSE_MALFORMED;
	if ((void *)iph + hdr_len > c->end)
		return PARSE_MALFORMED;

	tot_len = bpf_ntohs(iph->tot_len);
	if (tot_len < hdr_len)
		return PARSE_MALFORMED;
	if ((void *)iph + tot_len > c->end)
		return PARSE_MALFORMED;

	*iph_out = iph;
	c->pos = (void *)iph + hdr_len;
	return PARSE_OK;
}

/* First fragments carry the UDP header but not the whole datagram, later ones carry no UDP header at all. */
static __always_inline int ipv4_is_fragment(const struct iphdr *iph)
{
	return (iph->frag_off & bpf_htons(IPV4_MF | IPV4_OFFSET_MASK)) != 0;
}

static __always_inline __u32 ipv4_payload_len(const struct iphdr *iph)
{
	return bpf_ntohs(iph->tot_len) - iph->ihl * 4;
}

/* A fragment whose offset is not 0: it carries no UDP header, only payload bytes further into the datagram. */
static __always_inline int ipv4_is_later_fragment(const struct iphdr *iph)
{
	return (iph->frag_off & bpf_htons(IPV4_OFFSET_MASK)) != 0;
}

static __always_inline int ipv4_dont_fragment(const struct iphdr *iph)
{
	return (iph->frag_off & bpf_htons(IPV4_DF)) != 0;
}

/*
 * The UDP length must match the IP payload exactly: anything else means one of the two headers lies, and rewriting such
 * a datagram would forward garbage under a valid checksum. A first fragment carries only the start of the datagram,
 * so there the UDP length may only be larger.
 */
static __always_inline enum parse_result parse_udphdr(struct hdr_cursor *c, struct udphdr **udph_out,
						      __u32 ip_payload_len, int first_fragment)
{
	struct udphdr *udph = c->pos;
	__u32 udp_len;

	if (ip_payload_len < sizeof(*udph))
		return PARSE_MALFORMED;
	if ((void *)(udph + 1) > c->end)
		return PARSE_MALFORMED;
	udp_len = bpf_ntohs(udph->len);
	if (first_fragment ? udp_len <= ip_payload_len : udp_len != ip_payload_len)
		return PARSE_MALFORMED;

	*udph_out = udph;
	c->pos = udph + 1;
	return PARSE_OK;
}

#endif /* FLOWLB_PARSING_H */

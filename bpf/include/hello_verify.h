/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The balancer's stateless DTLS cookie exchange (RFC 6347 §4.2.1), answered here instead of in the control plane: a
 * ClientHello to a VIP that asks for it and that does not carry a valid cookie is turned, in place, into the
 * balancer's HelloVerifyRequest and sent back out (XDP_TX). Forged first datagrams from spoofed sources then cost one
 * short reply each and never wake userspace; only a hello that comes back with the cookie goes on.
 *
 * The cookie is SipHash-2-4 under a key the control plane rotates, over the 80 bytes of `struct cookie_input`; the
 * control plane computes the same (@flowlb/mapper-dtls-sni `encodeCookieInput`) and checks every cookie again before
 * it forwards a hello, so this program and userspace accept exactly the same ones. Only fields in front of the cookie
 * are bound, so that the first fragment of a fragmented hello can be answered as well as a whole one.
 */
#ifndef FLOWLB_HELLO_VERIFY_H
#define FLOWLB_HELLO_VERIFY_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "flowlb.h"
#include "csum.h"
#include "maps.h"

/* DTLS record header: type(1) version(2) epoch(2) sequence(6) length(2). */
#define DTLS_RECORD_HDR_LEN 13
/* Handshake header: type(1) length(3) message_seq(2) fragment_offset(3) fragment_length(3). */
#define DTLS_HS_HDR_LEN 12
#define DTLS_CONTENT_HANDSHAKE 22
#define DTLS_HS_CLIENT_HELLO 1
#define DTLS_HS_HELLO_VERIFY_REQUEST 3
#define DTLS_RANDOM_LEN 32
#define DTLS_SESSION_ID_MAX 32
/* Offsets in the UDP payload of a record that opens with a ClientHello fragment. */
#define HV_OFF_BODY (DTLS_RECORD_HDR_LEN + DTLS_HS_HDR_LEN)
#define HV_OFF_SID_LEN (HV_OFF_BODY + 2 + DTLS_RANDOM_LEN)

/* The reply: a record with one whole HelloVerifyRequest, server_version fe ff, the cookie with its length byte. */
#define HV_BODY_LEN (2 + 1 + FLOWLB_COOKIE_LEN)
#define HV_PAYLOAD_LEN (DTLS_RECORD_HDR_LEN + DTLS_HS_HDR_LEN + HV_BODY_LEN)
#define HV_FRAME_LEN (sizeof(struct ethhdr) + sizeof(struct iphdr) + sizeof(struct udphdr) + HV_PAYLOAD_LEN)
#define HV_TTL 64

/*
 * What the cookie binds, as @flowlb/mapper-dtls-sni lays it out: the client's address and port (network order),
 * client_version, random, session_id length and session_id padded with zeros. Ten 64-bit words.
 */
union cookie_input {
	__u8 b[80];
	__u64 w[10];
};

#define HV_ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define HV_SIPROUND                                                                                          \
	do {                                                                                                 \
		v0 += v1; v1 = HV_ROTL(v1, 13); v1 ^= v0; v0 = HV_ROTL(v0, 32);                              \
		v2 += v3; v3 = HV_ROTL(v3, 16); v3 ^= v2;                                                    \
		v0 += v3; v3 = HV_ROTL(v3, 21); v3 ^= v0;                                                    \
		v2 += v1; v1 = HV_ROTL(v1, 17); v1 ^= v2; v2 = HV_ROTL(v2, 32);                              \
	} while (0)

/*
 * SipHash-2-4 of the 80 bytes of `in` (little-endian words, as the reference reads them; so does every BPF host).
 * A function of its own: inlined three times, its rounds would take more stack than the program has.
 */
static __noinline __u64 cookie_mac(const __u8 *key, const union cookie_input *in)
{
	__u64 k0, k1, v0, v1, v2, v3, m;
	int i;

	__builtin_memcpy(&k0, key, 8);
	__builtin_memcpy(&k1, key + 8, 8);
	v0 = k0 ^ 0x736f6d6570736575ULL;
	v1 = k1 ^ 0x646f72616e646f6dULL;
	v2 = k0 ^ 0x6c7967656e657261ULL;
	v3 = k1 ^ 0x7465646279746573ULL;
#pragma unroll
	for (i = 0; i < 10; i++) {
		m = in->w[i];
		v3 ^= m;
		HV_SIPROUND;
		HV_SIPROUND;
		v0 ^= m;
	}
	/* The final block holds only the message length (80) in its top byte: 80 is a multiple of 8. */
	m = (__u64)sizeof(*in) << 56;
	v3 ^= m;
	HV_SIPROUND;
	HV_SIPROUND;
	v0 ^= m;
	v2 ^= 0xff;
	HV_SIPROUND;
	HV_SIPROUND;
	HV_SIPROUND;
	HV_SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

static __always_inline struct flowlb_hello_verify *hello_verify_config(__be32 daddr, __be16 dport)
{
	struct flowlb_vip key = { .addr = daddr, .port = dport, .pad = 0 };

	return bpf_map_lookup_elem(&hello_verify, &key);
}

struct hv_reply {
	struct udphdr udp;
	__u8 dtls[HV_PAYLOAD_LEN];
} __attribute__((packed));

/*
 * Returns 1 when the frame has become a HelloVerifyRequest to send back out (XDP_TX), 0 when it goes on as before:
 * not a ClientHello that opens a record, a hello whose first bytes the record, the fragment or the datagram does not
 * hold, one with a valid cookie (the control plane checks it again and forwards it), or an IPv4 header with options.
 */
static __noinline int hello_verify_answer(struct xdp_md *ctx, const struct flowlb_hello_verify *hv)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	struct udphdr *udph = (void *)(iph + 1);
	__u8 *p = (void *)(udph + 1);
	union cookie_input in;
	struct hv_reply r;
	__u8 mac_src[ETH_ALEN], mac_dst[ETH_ALEN];
	__be32 client_addr, vip_addr;
	__be16 client_port, vip_port;
	__u32 avail, rec_len, frag_len, sid_len, cookie_len, sum;
	__u64 cookie, given;
	__u32 slot;
	int i;

	if ((void *)(p + HV_OFF_SID_LEN + 1) > end)
		return 0;
	if (iph->ihl != 5)
		return 0;
	/* parse_udphdr made the UDP length agree with the IP header, and parse_ipv4hdr the IP length with the frame. */
	avail = bpf_ntohs(udph->len) - sizeof(*udph);
	if (p[0] != DTLS_CONTENT_HANDSHAKE || p[1] != 0xfe || p[3] != 0 || p[4] != 0)
		return 0;
	rec_len = ((__u32)p[11] << 8) | p[12];
	if (DTLS_RECORD_HDR_LEN + rec_len < avail)
		avail = DTLS_RECORD_HDR_LEN + rec_len;
	if (p[13] != DTLS_HS_CLIENT_HELLO || p[19] != 0 || p[20] != 0 || p[21] != 0)
		return 0;
	frag_len = ((__u32)p[22] << 16) | ((__u32)p[23] << 8) | p[24];
	if (HV_OFF_BODY + frag_len < avail)
		avail = HV_OFF_BODY + frag_len;
	/* client_version of any DTLS version; the control plane refuses the rest the same way. */
	if (p[HV_OFF_BODY] != 0xfe)
		return 0;
	sid_len = p[HV_OFF_SID_LEN];
	if (sid_len > DTLS_SESSION_ID_MAX)
		return 0;
	/* Up to and including the cookie's length byte. */
	if (HV_OFF_SID_LEN + 1 + sid_len + 1 > avail)
		return 0;

	__builtin_memset(&in, 0, sizeof(in));
	__builtin_memcpy(&in.b[0], &iph->saddr, 4);
	__builtin_memcpy(&in.b[4], &udph->source, 2);
#pragma unroll
	for (i = 0; i < 2 + DTLS_RANDOM_LEN; i++)
		in.b[6 + i] = p[HV_OFF_BODY + i];
	in.b[40] = sid_len;
#pragma unroll
	for (i = 0; i < DTLS_SESSION_ID_MAX; i++) {
		__u8 *b = p + HV_OFF_SID_LEN + 1 + i;

		if (i >= sid_len)
			break;
		if ((void *)(b + 1) > end)
			return 0;
		in.b[41 + i] = *b;
	}

	{
		__u8 *c = p + HV_OFF_SID_LEN + 1 + (sid_len & 0x3f);

		if ((void *)(c + 1) > end)
			return 0;
		cookie_len = *c;
		if (cookie_len == FLOWLB_COOKIE_LEN) {
			if (HV_OFF_SID_LEN + 2 + sid_len + FLOWLB_COOKIE_LEN > avail)
				return 0;
			if ((void *)(c + 1 + FLOWLB_COOKIE_LEN) > end)
				return 0;
			__builtin_memcpy(&given, c + 1, FLOWLB_COOKIE_LEN);
			/* Both keys are tried: the previous one stays good for a period after a rotation. */
			if (cookie_mac(hv->keys[0], &in) == given || cookie_mac(hv->keys[1], &in) == given)
				return 0;
		}
	}

	slot = hv->current & 1;
	cookie = cookie_mac(hv->keys[slot], &in);

	/* Everything the reply needs from the hello is read before the frame shrinks. */
	__builtin_memcpy(mac_src, eth->h_source, ETH_ALEN);
	__builtin_memcpy(mac_dst, eth->h_dest, ETH_ALEN);
	client_addr = iph->saddr;
	vip_addr = iph->daddr;
	client_port = udph->source;
	vip_port = udph->dest;

	r.udp.source = vip_port;
	r.udp.dest = client_port;
	r.udp.len = bpf_htons(sizeof(r));
	r.udp.check = 0;
	r.dtls[0] = DTLS_CONTENT_HANDSHAKE;
	/* DTLS 1.0 on the record, whatever version follows (RFC 6347 §4.2.1). */
	r.dtls[1] = 0xfe;
	r.dtls[2] = 0xff;
	r.dtls[3] = 0;
	r.dtls[4] = 0;
	/* The hello's record sequence number, repeated so that answers without state never share one. */
	__builtin_memcpy(&r.dtls[5], p + 5, 6);
	r.dtls[11] = 0;
	r.dtls[12] = DTLS_HS_HDR_LEN + HV_BODY_LEN;
	r.dtls[13] = DTLS_HS_HELLO_VERIFY_REQUEST;
	r.dtls[14] = 0;
	r.dtls[15] = 0;
	r.dtls[16] = HV_BODY_LEN;
	/* The hello's message_seq: the one the client expects the answer to carry (0 for a first hello). */
	r.dtls[17] = p[17];
	r.dtls[18] = p[18];
	r.dtls[19] = 0;
	r.dtls[20] = 0;
	r.dtls[21] = 0;
	r.dtls[22] = 0;
	r.dtls[23] = 0;
	r.dtls[24] = HV_BODY_LEN;
	r.dtls[25] = 0xfe;
	r.dtls[26] = 0xff;
	r.dtls[27] = FLOWLB_COOKIE_LEN;
	__builtin_memcpy(&r.dtls[28], &cookie, FLOWLB_COOKIE_LEN);

	/* UDP checksum: pseudo-header (addresses, protocol, length) and the datagram. */
	sum = csum_add_words16(&vip_addr, 4, 0);
	sum = csum_add_words16(&client_addr, 4, sum);
	sum += bpf_htons(IPPROTO_UDP);
	sum += r.udp.len;
	sum = csum_add_words16(&r, sizeof(r), sum);
	r.udp.check = csum_finish32(sum);
	if (r.udp.check == 0)
		r.udp.check = 0xffff;

	if (bpf_xdp_adjust_tail(ctx, (int)HV_FRAME_LEN - (int)(end - data)))
		return 0;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	/* Never taken (the frame is exactly that long now); the verifier needs to see it. */
	if (data + HV_FRAME_LEN > end)
		return 0;
	eth = data;
	iph = (void *)(eth + 1);
	__builtin_memcpy(eth->h_dest, mac_src, ETH_ALEN);
	__builtin_memcpy(eth->h_source, mac_dst, ETH_ALEN);
	iph->version = 4;
	iph->ihl = 5;
	iph->tos = 0;
	iph->tot_len = bpf_htons(sizeof(struct iphdr) + sizeof(r));
	iph->id = 0;
	iph->frag_off = 0;
	iph->ttl = HV_TTL;
	iph->protocol = IPPROTO_UDP;
	iph->check = 0;
	iph->saddr = vip_addr;
	iph->daddr = client_addr;
	iph->check = csum_finish32(csum_add_words16(iph, sizeof(*iph), 0));
	__builtin_memcpy((void *)(iph + 1), &r, sizeof(r));
	return 1;
}

#endif /* FLOWLB_HELLO_VERIFY_H */

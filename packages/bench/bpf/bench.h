/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Layout of the bench programs' maps, shared with src/bench-object.ts. */
#ifndef FLOWLB_BENCH_H
#define FLOWLB_BENCH_H

#include <linux/types.h>

#define GEN_HDR_LEN 42 /* Ethernet + IPv4 without options + UDP */
/*
 * Bytes of the template written on every run: the headers and the start of the payload, which a balancer that
 * answers in place (flowlb's HelloVerifyRequest: 78 bytes) leaves rewritten in a page the next run recycles.
 */
#define GEN_TEMPLATE_LEN 80

/*
 * Numbers in host byte order. Client i is first_addr + i / ports_per_addr, port first_port + i % ports_per_addr;
 * or, with scatter_bits set, first_addr + ((i * GEN_SCATTER_MUL) mod 2^scatter_bits), port first_port +
 * i / 2^scatter_bits. hdr is the frame's first GEN_TEMPLATE_LEN bytes as sent (zeros past a shorter frame), with
 * source address, source port and both checksums zero.
 */
struct gen_config {
	__u8 hdr[GEN_TEMPLATE_LEN];
	__u32 flows;
	__u32 ports_per_addr;
	__u32 first_addr;
	__u32 first_port;
	/* Ones' complement sums (unfolded, of big-endian words) of the IPv4 header and of the UDP pseudo-header, header
	 * and payload, taken with the source address, source port and both checksums zero. */
	__u32 ip_sum;
	__u32 udp_sum;
	/* Nonzero: consecutive clients land far apart in a block of 2^scatter_bits addresses, as spoofed random
	 * sources do, and every address is used once before any is used again. At most GEN_SCATTER_BITS_MAX. */
	__u32 scatter_bits;
};

/* Odd, so that multiplying by it modulo a power of two visits every address of the block once. */
#define GEN_SCATTER_MUL 2654435761U
#define GEN_SCATTER_BITS_MAX 24

/* What mark_drop looks for, when active: mark at payload_off bytes into the UDP payload (at most MARK_OFF_MAX). */
#define MARK_LEN 32
#define MARK_OFF_MAX 1023
struct mark_config {
	__u32 active;
	__u32 payload_off;
	__u8 mark[MARK_LEN];
};

enum sink_counter {
	SINK_PACKETS = 0,
	SINK_BYTES = 1,
	SINK_NR_COUNTERS,
};

#endif

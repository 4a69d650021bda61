/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Layout of the bench programs' maps, shared with src/bench-object.ts. */
#ifndef FLOWLB_BENCH_H
#define FLOWLB_BENCH_H

#include <linux/types.h>

#define GEN_HDR_LEN 42 /* Ethernet + IPv4 without options + UDP */

/*
 * Numbers in host byte order. Client i is first_addr + i / ports_per_addr, port first_port + i % ports_per_addr.
 * hdr is the frame's headers as sent, with source address, source port and both checksums zero.
 */
struct gen_config {
	__u8 hdr[GEN_HDR_LEN];
	__u8 pad[2];
	__u32 flows;
	__u32 ports_per_addr;
	__u32 first_addr;
	__u32 first_port;
	/* Ones' complement sums (unfolded, of big-endian words) of the IPv4 header and of the UDP pseudo-header, header
	 * and payload, taken with the source address, source port and both checksums zero. */
	__u32 ip_sum;
	__u32 udp_sum;
};

enum sink_counter {
	SINK_PACKETS = 0,
	SINK_BYTES = 1,
	SINK_NR_COUNTERS,
};

#endif

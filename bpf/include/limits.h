/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Rate limits on new clients, enforced before their datagrams reach the control plane: a source (or a /24) that
 * sends the VIP first datagrams faster than allowed loses the excess here, at the cost of a map lookup, instead of
 * costing the control plane a classification each.
 */
#ifndef FLOWLB_LIMITS_H
#define FLOWLB_LIMITS_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "flowlb.h"
#include "maps.h"

#define FLOWLB_NS_PER_SEC 1000000000ULL
/*
 * Time counted at most since a bucket was last used: any bucket is full again by then (the control plane keeps rates
 * at or below FLOWLB_RATE_MAX and bursts below it), and the product with the rate stays far from overflowing.
 */
#define FLOWLB_BUCKET_IDLE_MAX_NS (1000ULL * FLOWLB_NS_PER_SEC)

static __always_inline int is_vip(__be32 daddr, __be16 dport)
{
	struct flowlb_vip key = { .addr = daddr, .port = dport, .pad = 0 };

	return bpf_map_lookup_elem(&vips, &key) != 0;
}

/*
 * Takes a token from the bucket of `key`, refilled at `rate` per second up to `burst`; a bucket seen for the first
 * time starts full. Returns 0 when none is left. CPUs update a bucket without a lock: under contention a few
 * datagrams more or fewer pass than the rate says, which a limit meant for floods can afford.
 */
static __always_inline int bucket_take(struct flowlb_bucket_key *key, __u32 rate, __u32 burst, __u64 now)
{
	struct flowlb_bucket *b = bpf_map_lookup_elem(&buckets, key);
	struct flowlb_bucket fresh;
	__u64 tokens, add;

	if (!b) {
		fresh.stamp_ns = now;
		fresh.tokens = burst > 0 ? burst - 1 : 0;
		fresh.pad = 0;
		bpf_map_update_elem(&buckets, key, &fresh, BPF_ANY);
		return burst > 0;
	}
	tokens = b->tokens;
	/* Another CPU may have counted up to a moment a little ahead of this one's clock: nothing to add then. */
	if (now > b->stamp_ns && now - b->stamp_ns > FLOWLB_BUCKET_IDLE_MAX_NS) {
		tokens = burst;
		b->stamp_ns = now;
	} else if (now > b->stamp_ns) {
		add = (now - b->stamp_ns) * rate / FLOWLB_NS_PER_SEC;
		if (add > 0) {
			tokens += add;
			if (tokens > burst)
				tokens = burst;
			/* Only whole tokens are counted, so the time they took is kept and the remainder carries over. */
			b->stamp_ns = tokens == burst ? now : b->stamp_ns + add * FLOWLB_NS_PER_SEC / rate;
		}
	}
	if (tokens == 0) {
		b->tokens = 0;
		return 0;
	}
	b->tokens = tokens - 1;
	return 1;
}

/* Whether a new client's datagram from `saddr` to the VIP may go on to the control plane. */
static __always_inline int new_client_allowed(__be32 saddr, __u64 now)
{
	__u32 zero = 0;
	struct flowlb_limits *l = bpf_map_lookup_elem(&limits, &zero);
	struct flowlb_bucket_key key = { .addr = saddr, .kind = 0 };

	if (!l)
		return 1;
	if (l->source_rate && !bucket_take(&key, l->source_rate, l->source_burst, now))
		return 0;
	if (l->net24_rate) {
		key.addr = saddr & bpf_htonl(0xffffff00);
		key.kind = 1;
		if (!bucket_take(&key, l->net24_rate, l->net24_burst, now))
			return 0;
	}
	return 1;
}

#endif /* FLOWLB_LIMITS_H */

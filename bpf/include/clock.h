/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The program's clock: CLOCK_MONOTONIC as of the last tick (bpf_ktime_get_coarse_ns), read once per tick and CPU.
 * The coarse clock moves only when the tick moves jiffies, so between two ticks every read gives the same value; but
 * each read is a helper call, and with the return-speculation mitigations of some CPUs a call and its return cost
 * about as much as the rest of a hit. bpf_jiffies64 is inlined by the verifier into a load: comparing it with the
 * jiffies of the last read tells whether the value kept for this CPU is still the current one.
 */
#ifndef FLOWLB_CLOCK_H
#define FLOWLB_CLOCK_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "flowlb.h"

struct flowlb_clock {
	__u64 jiffies;
	__u64 coarse_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct flowlb_clock);
	__uint(max_entries, 1);
} clock SEC(".maps");

/*
 * The coarse clock's value. A read that falls between a tick's jiffies update and its timekeeping update keeps the
 * previous tick's value until the next tick: one tick (a few ms) behind, which nothing that reads this clock (flow
 * last_used, next-hop and fragment ages, rate limits) can tell apart from the coarse clock's own lag.
 */
static __always_inline __u64 flowlb_now(void)
{
	__u32 zero = 0;
	struct flowlb_clock *c = bpf_map_lookup_elem(&clock, &zero);
	__u64 j = bpf_jiffies64();

	if (!c)
		return bpf_ktime_get_coarse_ns();
	if (c->jiffies != j || c->coarse_ns == 0) {
		c->coarse_ns = bpf_ktime_get_coarse_ns();
		c->jiffies = j;
	}
	return c->coarse_ns;
}

#endif /* FLOWLB_CLOCK_H */

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The program's maps and the small helpers around them. Sizes are only defaults: loaders set the real ones with
 * bpf_map__set_max_entries before loading.
 */
#ifndef FLOWLB_MAPS_H
#define FLOWLB_MAPS_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "flowlb.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct flow_key);
	__type(value, struct flow_val);
	__uint(max_entries, FLOWLB_FLOWS_MAX_DEFAULT);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, FLOWLB_STAT__MAX);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct flowlb_vip);
	__type(value, __u32);
	__uint(max_entries, FLOWLB_VIPS_MAX_DEFAULT);
} vips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct flowlb_vip);
	__type(value, struct flowlb_hello_verify);
	__uint(max_entries, FLOWLB_VIPS_MAX_DEFAULT);
} hello_verify SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct flowlb_limits);
	__uint(max_entries, 1);
} limits SEC(".maps");

/* LRU: a flood from ever new sources pushes out the buckets of sources long quiet, never the table itself. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct flowlb_bucket_key);
	__type(value, struct flowlb_bucket);
	__uint(max_entries, FLOWLB_BUCKETS_MAX_DEFAULT);
} buckets SEC(".maps");

/*
 * Which backend each slot of FLOWLB_F_TARGET_MASK stands for (see struct flowlb_target). The program never reads it:
 * it is here so that libbpf creates it with the other maps and pins it beside them, where every process sharing them
 * agrees on the slots.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct flowlb_target);
	__uint(max_entries, FLOWLB_TARGETS_MAX);
} target_slots SEC(".maps");

/* Indexed by slot; index 0 stays unused, so that a slot is its own index without a subtraction. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct flowlb_target_stats);
	__uint(max_entries, FLOWLB_TARGETS_MAX + 1);
} target_stats SEC(".maps");

/* The next-hop cache, direct-mapped per CPU (see nexthop.h): no CPU ever reads an entry another one is writing. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct flowlb_nexthop);
	__uint(max_entries, FLOWLB_NEXTHOP_SLOTS);
} nexthops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct flowlb_nexthop_ctl);
	__uint(max_entries, 1);
} nexthop_ctl SEC(".maps");

/*
 * The interfaces frames may be redirected to, by ifindex: the ones the program is attached to, which take XDP frames.
 * A route out of any other interface (a bridge, a VLAN, a veth whose peer runs no program) is left to the kernel.
 */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__type(key, __u32);
	__type(value, struct bpf_devmap_val);
	__uint(max_entries, 64);
} tx_ports SEC(".maps");

/* What is left of each CPU's allowance of ICMP errors (see icmp_reply.h): the single entry, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct flowlb_bucket);
	__uint(max_entries, 1);
} icmp_budget SEC(".maps");

/* LRU: datagrams whose last fragment never came are pushed out by newer ones, never the other way round. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct flowlb_frag_key);
	__type(value, struct flowlb_frag);
	__uint(max_entries, FLOWLB_FRAGS_MAX_DEFAULT);
} frags SEC(".maps");

/*
 * How stale last_used may get before a hit refreshes it. The cleaner works in seconds, so 100 ms is precise enough,
 * and it keeps a busy flow from dirtying its entry's cache line on every packet across CPUs.
 */
#define FLOWLB_TOUCH_INTERVAL_NS (100ULL * 1000 * 1000)

static __always_inline void stats_inc(__u32 stat)
{
	__u64 *cnt = bpf_map_lookup_elem(&stats, &stat);

	/* Per-CPU slot: only this CPU writes it, and XDP does not preempt itself. */
	if (cnt)
		*cnt += 1;
}

/*
 * Counts one packet of `ip_len` bytes (the IPv4 total length) for the target slot in a flow entry's `flags`, as they
 * were read before flow_confirm: the slot bits are the control plane's and the program never changes them. Flows
 * without a slot are not counted per target.
 */
static __always_inline void target_count(__u32 flags, __u32 ip_len)
{
	__u32 slot = (flags & FLOWLB_F_TARGET_MASK) >> FLOWLB_F_TARGET_SHIFT;
	struct flowlb_target_stats *ts;

	if (!slot)
		return;
	ts = bpf_map_lookup_elem(&target_stats, &slot);
	/* Never null for a slot the mask lets through; the verifier wants the check all the same. */
	if (!ts)
		return;
	/* Per-CPU, like stats_inc: no atomics needed. */
	if (flags & FLOWLB_F_REVERSE) {
		ts->rev_packets += 1;
		ts->rev_bytes += ip_len;
	} else {
		ts->fwd_packets += 1;
		ts->fwd_bytes += ip_len;
	}
}

static __always_inline struct flow_val *flow_lookup(__be32 daddr, __be32 saddr, __be16 dport, __be16 sport)
{
	struct flow_key key = {
		.dst_addr = daddr,
		.src_addr = saddr,
		.dst_port = dport,
		.src_port = sport,
		.pad = 0,
	};

	return bpf_map_lookup_elem(&flows, &key);
}

/*
 * `now` is the coarse clock (flowlb_now in clock.h). Written through the looked-up pointer, never with a map update: if
 * the cleaner deleted the entry meanwhile, the write lands in memory that is no longer in the table instead of
 * re-inserting the flow.
 *
 * The coarse clock is CLOCK_MONOTONIC as of the last tick, where the fine clock reads the clock source, which on a
 * VM is about a fifth of a hit. The cleaner works in seconds, so a tick (4 ms at HZ=250)
 * does not matter to it. The control plane stamps new entries with the fine clock, up to a tick ahead of this one,
 * so an entry within the interval in either direction is fresh; anything further off, a zero from a tool or a stamp
 * in the future, counts as stale and is set to now.
 */
static __always_inline void flow_touch(struct flow_val *val, __u64 now)
{
	__u64 last = *(volatile __u64 *)&val->last_used;

	if (now - last >= FLOWLB_TOUCH_INTERVAL_NS && last - now >= FLOWLB_TOUCH_INTERVAL_NS)
		*(volatile __u64 *)&val->last_used = now;
}

/*
 * Marks an entry on the first packet that reaches it after the install: a forward entry confirmed (the first datagram
 * of every flow took the slow path, so this one is the client speaking again), a reverse entry replied (the backend
 * answered). Written once, so the entry's cache line stays clean afterwards. Only this program sets these bits in
 * place; the control plane replaces whole values. Returns the flags as they were, for the caller's own use, so they
 * are read once.
 */
static __always_inline __u32 flow_confirm(struct flow_val *val)
{
	__u32 flags = *(volatile __u32 *)&val->flags;
	__u32 mark = (flags & FLOWLB_F_REVERSE) ? FLOWLB_F_REPLIED : FLOWLB_F_CONFIRMED;

	if (!(flags & mark))
		*(volatile __u32 *)&val->flags = flags | mark;
	return flags;
}

#endif /* FLOWLB_MAPS_H */

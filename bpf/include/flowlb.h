/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The one layout shared by the XDP program and userspace (the TypeScript codec in @flowlb/flow-table mirrors it and
 * its tests check every size and offset against this file). It is the Go original's layout, so tools written for
 * the original read our maps.
 */
#ifndef FLOWLB_H
#define FLOWLB_H

#include <linux/types.h>

/* Addresses and ports in network byte order. */
struct flow_key {
	__u32 dst_addr;
	__u32 src_addr;
	__u16 dst_port;
	__u16 src_port;
	__u32 pad; /* always 0 */
};

struct flow_val {
	__u32 dst_addr; /* rewrite to; network byte order */
	__u32 src_addr;
	__u16 dst_port;
	__u16 src_port;
	__u32 flags;     /* FLOWLB_F_* */
	__u64 last_used; /* CLOCK_MONOTONIC ns, host byte order; the program writes the coarse clock */
};

/* The entry rewrites a backend's reply back to the client; counted apart from forward hits. */
#define FLOWLB_F_REVERSE 0x1u
/*
 * Set by the program on a forward entry when a packet of the client reaches it: the client spoke again after its
 * first datagram installed the flow. A flow still without it was made by one datagram, possibly forged, and is the
 * first to go (a short TTL, and eviction under pressure).
 */
#define FLOWLB_F_CONFIRMED 0x2u
/*
 * Set by the program on a reverse entry when the first packet of the backend reaches it: the backend has answered
 * the flow. The control plane watches new flows for it, and counts one left without it as a sign the backend is down.
 */
#define FLOWLB_F_REPLIED 0x4u
/*
 * The backend an entry rewrites to (a forward entry) or whose replies it carries (a reverse one), as a slot of the
 * per-target counters in the upper bits of flags, so that the program counts per backend without a second lookup by
 * address and without growing the value. Slot 0 is no slot: the flow is not counted per target. The control plane
 * writes it into both entries of a flow; the program only reads it.
 */
#define FLOWLB_F_TARGET_SHIFT 16
#define FLOWLB_F_TARGET_MASK (0xfffu << FLOWLB_F_TARGET_SHIFT)
/* Slots are 1..FLOWLB_TARGETS_MAX: every value of the 12 bits but 0. */
#define FLOWLB_TARGETS_MAX 4095

/* Default sizes compiled into the object; loaders override them with bpf_map__set_max_entries. */
#define FLOWLB_FLOWS_MAX_DEFAULT 262144

/* An address and UDP port that new clients send to, in network byte order: the key of the `vips` map. */
struct flowlb_vip {
	__u32 addr;
	__u16 port;
	__u16 pad; /* always 0 */
};

/*
 * A backend endpoint, in network byte order: the value of the `target_slots` map, keyed by the slot (a __u32 in host
 * byte order). Only userspace reads and writes that map; it is there so that every process sharing the pinned maps
 * gives a backend the same slot. A process claims a slot for an endpoint by probing from FNV-1a-32 of the 6 bytes
 * addr, port (as stored here) mod FLOWLB_TARGETS_MAX, plus 1, slot after slot, inserting with BPF_NOEXIST: the first
 * slot that holds the endpoint or takes the insert is its slot. Slots are never released: the slots a claim passed
 * over stay taken, so a later probe for the same endpoint, from any process, reaches its slot before any free one.
 */
struct flowlb_target {
	__u32 addr;
	__u16 port;
	__u16 pad; /* always 0 */
};

/*
 * What the program forwarded for a slot (the value of the per-CPU `target_stats` array, indexed by slot): packets it
 * rewrote and sent on, through a forward entry (towards the backend) or a reverse one (its replies), and their bytes
 * as the IPv4 total length, which is what crosses the network whatever the link layer around it.
 */
struct flowlb_target_stats {
	__u64 fwd_packets;
	__u64 fwd_bytes;
	__u64 rev_packets;
	__u64 rev_bytes;
	/* ICMP destination unreachable messages about the slot's flows (see icmp.h); passed to the kernel as they came. */
	__u64 icmp_unreachable;
};

/*
 * Limits on the datagrams of new clients (misses addressed to a VIP), as token buckets: `rate` per second with
 * room for `burst` at once, per source address and per source /24. A rate of 0 turns that limit off. The single
 * entry of the `limits` array.
 */
struct flowlb_limits {
	__u32 source_rate;
	__u32 source_burst;
	__u32 net24_rate;
	__u32 net24_burst;
};

/* A token bucket of the `buckets` map: whole tokens and when they were last counted. */
struct flowlb_bucket {
	__u64 stamp_ns;
	__u32 tokens;
	__u32 pad;
};

/* The key of the `buckets` map: a source address, or a /24 (host bits 0) with `kind` 1. */
struct flowlb_bucket_key {
	__u32 addr;
	__u32 kind;
};

/*
 * The DTLS cookie exchange this program answers for a VIP (see hello_verify.h): the value of the `hello_verify` map,
 * keyed by `struct flowlb_vip`; a VIP without an entry leaves ClientHellos to the control plane. Two SipHash-2-4 keys,
 * so that cookies made just before a rotation stay good; `current` (0 or 1) names the one new cookies are made with.
 */
#define FLOWLB_COOKIE_KEY_LEN 16
#define FLOWLB_COOKIE_LEN 8
struct flowlb_hello_verify {
	__u32 current;
	__u32 pad;
	__u8 keys[2][FLOWLB_COOKIE_KEY_LEN];
};

#define FLOWLB_VIPS_MAX_DEFAULT 64
/* Rates and bursts the control plane accepts, per second and in datagrams. */
#define FLOWLB_RATE_MAX 1000000
#define FLOWLB_BUCKETS_MAX_DEFAULT 65536

/*
 * One entry of the next-hop cache (the per-CPU `nexthops` array; see nexthop.h): what bpf_fib_lookup answered for a
 * rewritten datagram's addresses, TOS and ingress interface. The program writes it only on its own CPU and keeps it
 * while its `gen` is the control's and it is younger than FLOWLB_NEXTHOP_MAX_AGE_NS.
 */
struct flowlb_nexthop {
	__u32 dst_addr; /* the lookup's key, in network byte order */
	__u32 src_addr;
	__u32 in_ifindex;
	__u8 tos;
	__u8 xdp_egress; /* the egress interface is in `tx_ports`: frames can be redirected to it */
	__u16 mtu;       /* of the route, host byte order */
	__u32 gen;       /* flowlb_nexthop_ctl.gen + 1 when filled; 0 is an empty entry */
	__u32 ifindex;   /* egress */
	__u8 dmac[6];
	__u8 smac[6];
	__u64 filled_ns; /* coarse CLOCK_MONOTONIC */
};

/*
 * The single entry of the `nexthop_ctl` array, written by the control plane: every change of `gen` drops the whole
 * cache at once (a route, neighbour, link or address changed), and FLOWLB_NEXTHOP_CACHE_OFF in `flags` turns the
 * cache off, so that every hit looks its route up.
 */
struct flowlb_nexthop_ctl {
	__u32 gen;
	__u32 flags;
};
#define FLOWLB_NEXTHOP_CACHE_OFF 0x1u
/* Slots of the next-hop cache per CPU: a power of two, the cache is direct-mapped. */
#define FLOWLB_NEXTHOP_SLOTS 1024
/* A cached next hop is looked up again after this long even without a change of gen: events can be lost. */
#define FLOWLB_NEXTHOP_MAX_AGE_NS (1000ULL * 1000 * 1000)

/*
 * The key of the `frags` map: an IPv4 datagram in fragments, as it arrived (source, destination, IP id; network byte
 * order). Its value says how the first fragment was rewritten, so that the later ones get the same addresses.
 */
struct flowlb_frag_key {
	__u32 src_addr;
	__u32 dst_addr;
	__u16 id;
	__u16 pad; /* always 0 */
};

struct flowlb_frag {
	__u32 dst_addr; /* rewrite to; network byte order */
	__u32 src_addr;
	__u32 flags;    /* the flow entry's flags: direction and target slot, for the counters */
	__u32 pad;
	__u64 seen_ns;  /* coarse CLOCK_MONOTONIC of the first fragment */
};
#define FLOWLB_FRAGS_MAX_DEFAULT 8192
/* How long later fragments of a datagram are forwarded after its first: the kernel's own ipfrag_time. */
#define FLOWLB_FRAG_MAX_AGE_NS (30ULL * 1000 * 1000 * 1000)

/*
 * Index into the per-CPU `stats` array. Each packet the program sees is counted exactly once, under its outcome.
 * Append only: userspace reads these by index.
 */
enum flowlb_stat {
	FLOWLB_STAT_FWD_HIT = 0,      /* forward entry: rewritten and sent (XDP_TX or redirect) */
	FLOWLB_STAT_REV_HIT = 1,      /* reverse entry: rewritten and sent */
	FLOWLB_STAT_MISS = 2,         /* IPv4/UDP without a flow: passed to the kernel */
	FLOWLB_STAT_FRAGMENT = 3,     /* IPv4/UDP fragment of no known flow (or a later one before its first): passed */
	FLOWLB_STAT_TTL = 4,          /* known flow, TTL <= 1: answered with ICMP time exceeded (a later fragment, or
				       * one RFC 1812 4.3.2.7 sends no error about: passed) */
	FLOWLB_STAT_FIB_NO_NEIGH = 5, /* known flow, next hop has no neighbour entry: passed rewritten, TTL untouched */
	FLOWLB_STAT_FIB_UNREACHABLE = 6, /* known flow, route blackhole/unreachable/prohibit: passed untouched */
	FLOWLB_STAT_FIB_NOT_FWDED = 7,   /* known flow, not forwardable (local destination, forwarding off, lwt): passed */
	FLOWLB_STAT_FIB_FRAG_NEEDED = 8, /* known flow, larger than the egress MTU: with DF answered with ICMP
					  * fragmentation needed (passed where RFC 1812 4.3.2.7 sends no error), without
					  * DF passed rewritten for the kernel to fragment */
	FLOWLB_STAT_FIB_OTHER = 9,       /* known flow, any other fib result or a helper error: passed untouched */
	FLOWLB_STAT_MALFORMED = 10,      /* truncated headers, bad IHL, UDP length that disagrees with IP: passed */
	FLOWLB_STAT_NOT_IPV4_UDP = 11,   /* anything else (ARP, IPv6, VLAN-tagged, TCP, IP version != 4): passed */
	FLOWLB_STAT_RATE_LIMITED = 12,   /* a new client's datagram to a VIP beyond its source's or /24's rate: dropped */
	FLOWLB_STAT_HELLO_VERIFY = 13,   /* a ClientHello to a VIP without a valid cookie: answered with a HelloVerifyRequest */
	FLOWLB_STAT_FRAGMENT_FWD = 14,   /* a fragment (first or later) of a known flow's datagram: rewritten and sent */
	FLOWLB_STAT_EGRESS_NO_XDP = 15,  /* known flow routed out of an interface not in tx_ports: passed rewritten */
	FLOWLB_STAT__MAX
};

#endif /* FLOWLB_H */

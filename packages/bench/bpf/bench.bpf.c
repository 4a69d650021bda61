// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The programs the benchmarks measure flowlb against and drive it with. They parse with flowlb's own helpers, so the
 * comparisons differ only in what comes after the parse.
 *
 *   floor_tx   parse Ethernet/IPv4/UDP and bounce the frame: the least an XDP UDP program can do
 *   bare_fwd   parse, then redirect to a fixed device without rewriting a byte: the forwarding limit
 *   gen        traffic generator for live-frames BPF_PROG_RUN: each run gets the next of N client tuples
 *   sink       counts the UDP datagrams that reach a backend and drops them; lets everything else through
 *   mark_drop  drops and counts the UDP datagrams that carry a configured 32-byte mark; lets everything else through
 *   pass       XDP_PASS, so a veth accepts frames redirected into it
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "parsing.h"
#include "bench.h"

static __always_inline int parse_udp(struct xdp_md *ctx, struct iphdr **iph_out, struct udphdr **udph_out)
{
	struct hdr_cursor cur;
	struct ethhdr *eth;

	cursor_init(&cur, ctx);
	if (parse_ethhdr(&cur, &eth) != PARSE_OK)
		return -1;
	if (parse_ipv4hdr(&cur, iph_out) != PARSE_OK)
		return -1;
	if (parse_udphdr(&cur, udph_out, ipv4_payload_len(*iph_out), 0) != PARSE_OK)
		return -1;
	return 0;
}

SEC("xdp")
int floor_tx(struct xdp_md *ctx)
{
	struct iphdr *iph;
	struct udphdr *udph;

	if (parse_udp(ctx, &iph, &udph))
		return XDP_PASS;
	return XDP_TX;
}

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} bare_port SEC(".maps");

SEC("xdp")
int bare_fwd(struct xdp_md *ctx)
{
	struct iphdr *iph;
	struct udphdr *udph;
	__u32 zero = 0;
	__u32 *ifindex;

	if (parse_udp(ctx, &iph, &udph))
		return XDP_PASS;
	ifindex = bpf_map_lookup_elem(&bare_port, &zero);
	if (!ifindex || !*ifindex)
		return XDP_PASS;
	return bpf_redirect(*ifindex, 0);
}

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_config);
} gen_cfg SEC(".maps");

/* Where this CPU's generator is in its walk over the clients; stepped, not divided, to stay cheap per frame. */
struct gen_state {
	__u32 idx;
	__u32 addr_off;
	__u32 port_off;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_state);
} gen_seq SEC(".maps");

static __always_inline __u16 fold_complement(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/*
 * Pages of a live run are recycled without being rewritten, and a frame comes back from its trip through a balancer
 * with its headers NATed, TTL spent and MACs swapped, or turned into an answer in place: every header byte and the
 * start of the payload are written again on every run, the checksums from sums userspace took over the template.
 */
SEC("xdp")
int gen(struct xdp_md *ctx)
{
	struct gen_config *cfg;
	struct gen_state *st;
	struct iphdr *iph;
	struct udphdr *udph;
	__u32 zero = 0, saddr;
	__u16 sport, check;
	void *data;

	cfg = bpf_map_lookup_elem(&gen_cfg, &zero);
	st = bpf_map_lookup_elem(&gen_seq, &zero);
	if (!cfg || !st || !cfg->flows || (!cfg->scatter_bits && !cfg->ports_per_addr))
		return XDP_DROP;
	data = (void *)(long)ctx->data;
	if (data + GEN_HDR_LEN > (void *)(long)ctx->data_end)
		return XDP_DROP;
	/* Eight bytes at a time: both sides start 8-aligned, and a byte-wise copy costs more than the rest of the run. */
	*(__u64 *)(data + 0) = *(__u64 *)(cfg->hdr + 0);
	*(__u64 *)(data + 8) = *(__u64 *)(cfg->hdr + 8);
	*(__u64 *)(data + 16) = *(__u64 *)(cfg->hdr + 16);
	*(__u64 *)(data + 24) = *(__u64 *)(cfg->hdr + 24);
	*(__u64 *)(data + 32) = *(__u64 *)(cfg->hdr + 32);
	if (data + GEN_TEMPLATE_LEN <= (void *)(long)ctx->data_end) {
		*(__u64 *)(data + 40) = *(__u64 *)(cfg->hdr + 40);
		*(__u64 *)(data + 48) = *(__u64 *)(cfg->hdr + 48);
		*(__u64 *)(data + 56) = *(__u64 *)(cfg->hdr + 56);
		*(__u64 *)(data + 64) = *(__u64 *)(cfg->hdr + 64);
		*(__u64 *)(data + 72) = *(__u64 *)(cfg->hdr + 72);
	} else {
		*(__u16 *)(data + 40) = *(__u16 *)(cfg->hdr + 40);
	}
	iph = data + sizeof(struct ethhdr);
	udph = (void *)(iph + 1);

	if (cfg->scatter_bits) {
		__u32 bits = cfg->scatter_bits & 31;

		saddr = cfg->first_addr + ((st->idx * GEN_SCATTER_MUL) & ((1U << bits) - 1));
		sport = (__u16)(cfg->first_port + (st->idx >> bits));
		if (++st->idx >= cfg->flows)
			st->idx = 0;
	} else {
		saddr = cfg->first_addr + st->addr_off;
		sport = (__u16)(cfg->first_port + st->port_off);
		if (++st->idx >= cfg->flows) {
			st->idx = 0;
			st->addr_off = 0;
			st->port_off = 0;
		} else if (++st->port_off >= cfg->ports_per_addr) {
			st->port_off = 0;
			st->addr_off++;
		}
	}

	iph->saddr = bpf_htonl(saddr);
	iph->check = bpf_htons(fold_complement(cfg->ip_sum + (saddr >> 16) + (saddr & 0xffff)));
	udph->source = bpf_htons(sport);
	check = fold_complement(cfg->udp_sum + (saddr >> 16) + (saddr & 0xffff) + sport);
	udph->check = bpf_htons(check ? check : 0xffff);
	return XDP_TX;
}

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SINK_NR_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} sink_count SEC(".maps");

SEC("xdp")
int sink(struct xdp_md *ctx)
{
	__u32 key = SINK_PACKETS;
	struct iphdr *iph;
	struct udphdr *udph;
	__u64 *n;

	if (parse_udp(ctx, &iph, &udph))
		return XDP_PASS;
	n = bpf_map_lookup_elem(&sink_count, &key);
	if (n)
		*n += 1;
	key = SINK_BYTES;
	n = bpf_map_lookup_elem(&sink_count, &key);
	if (n)
		*n += ctx->data_end - ctx->data;
	return XDP_DROP;
}

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mark_config);
} mark_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} mark_count SEC(".maps");

/*
 * Keeps copies of one known datagram (a replayed ClientHello, recognised by its 32-byte random) from a server behind
 * the balancer: on one machine, its answers to a flood of them would load a CPU that the measurement needs.
 */
SEC("xdp")
int mark_drop(struct xdp_md *ctx)
{
	struct mark_config *cfg;
	struct iphdr *iph;
	struct udphdr *udph;
	__u32 zero = 0;
	__u8 *p;
	__u64 *n;
	int i;

	if (parse_udp(ctx, &iph, &udph))
		return XDP_PASS;
	cfg = bpf_map_lookup_elem(&mark_cfg, &zero);
	if (!cfg || !cfg->active)
		return XDP_PASS;
	p = (__u8 *)(udph + 1) + (cfg->payload_off & MARK_OFF_MAX);
	if ((void *)(p + MARK_LEN) > (void *)(long)ctx->data_end)
		return XDP_PASS;
#pragma unroll
	for (i = 0; i < MARK_LEN; i++)
		if (p[i] != cfg->mark[i])
			return XDP_PASS;
	n = bpf_map_lookup_elem(&mark_count, &zero);
	if (n)
		*n += 1;
	return XDP_DROP;
}

SEC("xdp")
int pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

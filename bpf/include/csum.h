/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Incremental Internet checksum updates (RFC 1624, eqn. 3: HC' = ~(~HC + ~m + m')).
 *
 * Changes are gathered in a 32-bit accumulator and folded into the checksum once, so rewriting four fields costs one
 * fold instead of four. Every field handled here starts on a 16-bit boundary of its header, so the one's complement
 * sum can be taken on the words as they lie in memory (network order) without swapping bytes.
 */
#ifndef FLOWLB_CSUM_H
#define FLOWLB_CSUM_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>

/* Sum of ~old + new for each replaced 16-bit word. Dozens of words fit before the accumulator could overflow. */
typedef __u32 csum_delta_t;

static __always_inline __u16 csum_fold32(__u32 sum)
{
	/* Two rounds: the first can itself carry into bit 16, the second cannot. */
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

static __always_inline csum_delta_t csum_delta_add16(csum_delta_t delta, __u16 old_word, __u16 new_word)
{
	return delta + (__u16)~old_word + new_word;
}

static __always_inline csum_delta_t csum_delta_add32(csum_delta_t delta, __u32 old_word, __u32 new_word)
{
	delta = csum_delta_add16(delta, (__u16)(old_word >> 16), (__u16)(new_word >> 16));
	return csum_delta_add16(delta, (__u16)old_word, (__u16)new_word);
}

/*
 * Applies the gathered changes to a checksum field. Eqn. 3 never turns a valid checksum into -0 by accident: the
 * result is 0x0000 only when the folded sum is 0xffff, the same value the full computation would give.
 */
static __always_inline __u16 csum_apply(__u16 check, csum_delta_t delta)
{
	return (__u16)~csum_fold32((__u16)~check + delta);
}

/* Single-field shorthands for when only one field of a header changes. */
static __always_inline __u16 csum_replace16(__u16 check, __u16 old_word, __u16 new_word)
{
	return csum_apply(check, csum_delta_add16(0, old_word, new_word));
}

static __always_inline __u16 csum_replace32(__u16 check, __u32 old_word, __u32 new_word)
{
	return csum_apply(check, csum_delta_add32(0, old_word, new_word));
}

/*
 * UDP over IPv4: 0 in the field means "no checksum" and must stay 0, and a checksum that computes to 0 is sent as
 * 0xffff (RFC 768) so the receiver does not mistake it for "none".
 */
static __always_inline __u16 udp_csum_apply(__u16 check, csum_delta_t delta)
{
	__u16 res;

	if (check == 0)
		return 0;
	res = csum_apply(check, delta);
	return res ? res : 0xffff;
}

/*
 * Checksums from scratch, for headers the program writes itself (RFC 1071): words added in memory order, which folds
 * to the same one's complement sum as 16-bit words in network order, then folded and complemented once. 16-bit words
 * for any even length; 32-bit words where the length is a multiple of 4, half the additions.
 */
static __always_inline __u32 csum_add_words16(const void *data, const int len, __u32 sum)
{
	const __u16 *w = data;
	int i;

#pragma unroll
	for (i = 0; i < len / 2; i++)
		sum += w[i];
	return sum;
}

static __always_inline __u64 csum_add_words32(const void *data, const int len, __u64 sum)
{
	const __u32 *w = data;
	int i;

#pragma unroll
	for (i = 0; i < len / 4; i++)
		sum += w[i];
	return sum;
}

static __always_inline __u16 csum_finish32(__u32 sum)
{
	return (__u16)~csum_fold32(sum);
}

/* A few dozen 32-bit words cannot carry out of the 64 bits. */
static __always_inline __u16 csum_finish64(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	return csum_finish32((__u32)sum);
}

#endif /* FLOWLB_CSUM_H */

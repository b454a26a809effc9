/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef L4F_NODE_FLOWS_H
#define L4F_NODE_FLOWS_H

#include <bpf/bpf_helpers.h>

#include "node-jhash.h"
#include "node-map-defs.h"

/*
 * The flow cache (l4f_flows4 / l4f_flows6; docs/design/0007 "Flow cache"): an array of 64-byte sets of
 * L4F_FLOW_WAYS entries. A flow's set is jhash(5-tuple) modulo the sets, its 64-bit fingerprint that hash and
 * lookup3's second one from the same pass (`words`: struct l4f_flow4 / l4f_flow6 as 4 / 10 words; a seed of its own,
 * so neither depends on the VIP's hash mode or seed). Two flows share an entry only when 63 bits agree.
 * A first packet touches one cold line here, where a hash map's bucket, element and list neighbours were three or
 * four (0007: 350-440 ns less program time per first packet on one kind). A set full of referenced flows forgets
 * one (CLOCK, as in a page cache): the cache forgets a flow before it is full, which an LRU did not.
 *
 * Without locks, by validation rather than order: a way's tag and value are two 8-byte words, each stored whole,
 * and the value repeats 30 bits of its flow's tag (its check). A reader trusts a value only when the tag it found and
 * the value's check are both its flow's, so a way that another CPU rewrote between the two reads, or that two CPUs
 * wrote at once (one's tag, the other's value), reads as a miss: that flow takes the table's backend and writes its
 * own way whole again. Nothing depends on the CPU's store order.
 */
#define FLOW_SEED 0x9e3779b9u
#define FLOW_REFERENCED (1ull << 63)
#define FLOW_PREV_SHIFT 16
#define FLOW_CHECK_SHIFT 33
#define FLOW_CHECK_MASK 0x3fffffffull

struct l4f_flow_ref {
	struct l4f_flow_entry *way; /* the set's first entry */
	__u64 tag;
	int hit;                    /* index of the flow's entry, or -1 */
};

/* The tag's top 30 bits, which its value repeats. */
static __always_inline __u64 flow_check(__u64 tag)
{
	return (tag >> 34) & FLOW_CHECK_MASK;
}

static __always_inline __u64 flow_value(const struct l4f_flow_ref *r, __u32 id, __u32 prev)
{
	return (__u64)(id & 0xffff) | ((__u64)(prev & 0x1ffff) << FLOW_PREV_SHIFT) |
	       (flow_check(r->tag) << FLOW_CHECK_SHIFT);
}

/* The flow's set and fingerprint, and its entry when the set holds it. Returns -1 when the set is missing. */
static __always_inline int flow_find(void *flows, const __u32 *words, int v6, struct l4f_flow_ref *r)
{
	__u32 t, h = jhash_words2(words, v6 ? 10 : 4, FLOW_SEED, &t);
	__u32 idx = h % l4f_flow_sets;
	struct l4f_flow_set *set = bpf_map_lookup_elem(flows, &idx);
	if (!set)
		return -1;
	r->way = set->way;
	r->tag = ((__u64)t << 32 | h) | 1;
	r->hit = -1;
#pragma unroll
	for (int i = 0; i < L4F_FLOW_WAYS; i++)
		if (r->hit < 0 && set->way[i].tag == r->tag)
			r->hit = i;
	return 0;
}

/* The remembered flow's value (in `v`): 0, or -1 when the value is another flow's (see above). Marks it
 * referenced: an atomic add of the top bit, so a concurrent rewrite of the value is never undone (two CPUs adding
 * it at once clear it again, which only makes the entry an earlier candidate to forget). */
static __always_inline int flow_read(struct l4f_flow_ref *r, __u64 *v)
{
	struct l4f_flow_entry *e = &r->way[r->hit & (L4F_FLOW_WAYS - 1)];
	*v = *(volatile __u64 *)&e->value;
	if (((*v >> FLOW_CHECK_SHIFT) & FLOW_CHECK_MASK) != flow_check(r->tag))
		return -1;
	if (!(*v & FLOW_REFERENCED))
		__sync_fetch_and_add(&e->value, FLOW_REFERENCED);
	return 0;
}

/* Remembers the flow: its own entry, else an empty one, else one not referenced since the set was last full;
 * when every entry is referenced, their marks are cleared and one chosen by the fingerprint is forgotten. */
static __always_inline void flow_write(struct l4f_flow_ref *r, __u64 value)
{
	int w = r->hit;
#pragma unroll
	for (int i = 0; i < L4F_FLOW_WAYS; i++)
		if (w < 0 && !r->way[i].tag)
			w = i;
#pragma unroll
	for (int i = 0; i < L4F_FLOW_WAYS; i++)
		if (w < 0 && !(r->way[i].value & FLOW_REFERENCED))
			w = i;
	if (w < 0) {
#pragma unroll
		for (int i = 0; i < L4F_FLOW_WAYS; i++)
			if (r->way[i].value & FLOW_REFERENCED)
				__sync_fetch_and_add(&r->way[i].value, FLOW_REFERENCED); /* clears the top bit */
		w = (int)(r->tag >> 32) & (L4F_FLOW_WAYS - 1);
	}
	struct l4f_flow_entry *e = &r->way[w & (L4F_FLOW_WAYS - 1)];
	*(volatile __u64 *)&e->value = value;
	*(volatile __u64 *)&e->tag = r->tag;
}

#endif

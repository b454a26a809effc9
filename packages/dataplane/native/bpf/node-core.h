/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What the node's tc and XDP programs share (node.bpf.c): the flow hash, the backend choice (flow affinity, else
 * the slot table) and the outer header of an encapsulated packet. Nothing here touches a packet's context, so
 * both hooks pick the same backend for a flow and write the same bytes.
 */
#ifndef L4F_NODE_CORE_H
#define L4F_NODE_CORE_H

#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>

#include "node-flows.h"
#include "node-jhash.h"
#include "node-map-defs.h"

#define IPPROTO_ICMPV6_ 58
#define IPPROTO_GRE_ 47
#define IPPROTO_IPV6_ 41
#define IPPROTO_IPIP_ 4
#define IPV6_FRAGMENT_ 44
#define OUTER_TTL 64
#define GUE_SPORT_BASE 0xc000 /* the dynamic range, RFC 6335 */

/* nft's register layout of `saddr . sport . daddr . dport` (or `saddr` alone for source-ip). */
static __always_inline __u32 flow_hash4(__u32 saddr, __u16 sport, __u32 daddr, __u16 dport, __u8 mode, __u32 seed)
{
	__u32 w[4] = {saddr, (__u32)sport, daddr, (__u32)dport};
	if (mode == L4F_HASH_SOURCE_IP)
		return jhash_words(w, 1, seed);
	return jhash_words(w, 4, seed);
}

static __always_inline __u32 flow_hash6(const struct l4f_flow6 *f, __u8 mode, __u32 seed)
{
	__u32 w[10];
	__builtin_memcpy(&w[0], f->saddr, 16);
	w[4] = (__u32)f->sport;
	__builtin_memcpy(&w[5], f->daddr, 16);
	w[9] = (__u32)f->dport;
	if (mode == L4F_HASH_SOURCE_IP)
		return jhash_words(w, 4, seed);
	return jhash_words(w, 10, seed);
}

static __always_inline void count(void *map, __u32 idx, __u32 bytes)
{
	struct l4f_counter *c = bpf_map_lookup_elem(map, &idx);
	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
}

/*
 * Whether the VIP admits a packet from `saddr` (4 or 16 bytes as in the packet): one longest-prefix lookup of
 * {id, source} in l4f_src_ranges (node-maps.h struct l4f_src_key). Only for a VIP with L4F_VIP_SOURCE_RANGES: the
 * callers test the flag first, so a VIP without ranges pays that test and nothing else. Both hooks call it before
 * the VIP's counter and before pick(): a packet it refuses is no VIP traffic, never remembered in a flow LRU, and a
 * flow remembered before its prefix was removed stops with it (the check does not look at the flow maps).
 */
static __always_inline int source_admitted(const struct l4f_vip *vip, const void *saddr, int v6)
{
	struct l4f_src_key k = {.prefixlen = 32 + (v6 ? 128 : 32), .vip_id = vip->id};
	if (v6)
		__builtin_memcpy(k.addr, saddr, 16);
	else
		__builtin_memcpy(k.addr, saddr, 4);
	return bpf_map_lookup_elem(&l4f_src_ranges, &k) != NULL;
}

/*
 * The flow's slot in the VIP's table (NULL: no table, or out of range). Looked up for every packet, before the
 * flow LRU: on a first packet both the slot's line and the LRU bucket's are usually cold, and reading the slot
 * first lets the CPU wait for both misses at once instead of one after the other (docs/design/0007, Measured).
 */
static __always_inline struct l4f_slot *table_slot(const struct l4f_vip *vip, __u32 hash)
{
	void *table = bpf_map_lookup_elem(&l4f_tables, &vip->table);
	if (!table)
		return NULL;
	__u32 slot = (__u32)(((__u64)hash * vip->size) >> 32);
	return (struct l4f_slot *)bpf_map_lookup_elem(table, &slot);
}

/* One 8-byte load of a slot (struct l4f_slot: backend, then prev), or "no backend". */
static __always_inline __u64 slot_load(const struct l4f_slot *s)
{
	return s ? *(const volatile __u64 *)s : (__u64)L4F_NO_BACKEND;
}

/*
 * The live backend for a new flow (or an ICMP error about one), from its slot as slot_load read it. `*prev`: the
 * slot's previous owner's id + 1, 0 = none (second chance).
 */
static __always_inline struct l4f_backend *slot_backend(__u64 slot, __u32 *id, __u32 *prev)
{
	__u32 backend = (__u32)slot; /* little-endian: the first field */
	if (backend == L4F_NO_BACKEND)
		return NULL;
	*id = backend;
	*prev = (__u32)(slot >> 32);
	struct l4f_backend *b = bpf_map_lookup_elem(&l4f_backends, id);
	if (!b || !(b->flags & L4F_BACKEND_LIVE))
		return NULL;
	return b;
}

static __always_inline __u16 csum_fold(__u32 csum)
{
	csum = (csum & 0xffff) + (csum >> 16);
	csum = (csum & 0xffff) + (csum >> 16);
	return (__u16)~csum;
}

/*
 * Second chance: the previous owner to name in the GUE private data, or NULL. Only for `gue` VIPs, only a
 * backend still live for this VIP, of the VIP's family, and not the current one (ids are per VIP and address).
 */
static __always_inline const struct l4f_backend *previous_owner(const struct l4f_vip *vip, __u32 id, __u32 prev,
								 int v6)
{
	if (prev == 0 || vip->fwd != L4F_FWD_GUE)
		return NULL;
	__u32 pid = prev - 1;
	if (pid == id)
		return NULL;
	struct l4f_backend *p = bpf_map_lookup_elem(&l4f_backends, &pid);
	if (!p || !(p->flags & L4F_BACKEND_LIVE) || p->vip_id != vip->id || p->family != (v6 ? L4F_FAMILY_V6 : L4F_FAMILY_V4))
		return NULL;
	return p;
}


/* A flow's backend as pick() chose it. */
struct l4f_pick {
	struct l4f_backend *b;
	__u32 id;
	__u32 prev; /* second chance: the previous owner's id + 1, 0 = none (always 0 for UDP: 0011) */
	__u32 hash; /* the flow hash the flow was given (the LRU keeps it: GUE source port, IPv6 flow label) */
};

/*
 * Whether the TCP header at `th` (bounds checked against `end`) is a SYN without ACK: a new connection.
 */
static __always_inline int tcp_syn(const void *th, const void *end)
{
	const __u8 *flags = (const __u8 *)th + 13;
	if ((const void *)(flags + 1) > end)
		return 0;
	return (*flags & 0x12) == 0x02; /* SYN set, ACK clear */
}

/*
 * The backend of a flow (`f`: struct l4f_flow4 / l4f_flow6, `flows`: l4f_flows4 / l4f_flows6 for `v6` 0 / 1): the
 * one the flow was given while it is live for the VIP (Maglev §3.3), else the table's, remembered when `remember`
 * (0 for ICMP errors). Returns 0, or -1 when the slot has no live backend.
 * `syn` (a TCP SYN without ACK) opens a new connection: it takes the table's backend even when the cache remembers
 * its 5-tuple, i.e. a client reusing the port of an earlier connection (Maglev and Katran place new connections by
 * the table too), and replaces that entry. A remembered backend stays "live" while it is a member of the pool, also
 * when it failed its health checks (the table no longer has it); such a reused port went to the dead backend and
 * was refused (lab test "fail a backend", 2026-12-03: a new flow refused 2 s after every node had dropped it).
 *
 * A draining VIP (L4F_VIP_DRAINING) keeps its table, and refuses what opens a flow: a SYN, and a UDP packet the cache
 * does not remember. A TCP segment of an open connection the cache does not remember (ECMP moved its flow here from
 * another node: one added, drained or lost) takes the table's backend, as on any VIP, so it reaches the backend that
 * has its socket (Maglev §3.3: every node's table is the same) and is remembered.
 */
static __always_inline int pick(void *flows, const void *f, int v6, const struct l4f_vip *vip, __u32 hash,
				__u8 proto, int remember, int syn, struct l4f_pick *out)
{
	__u64 slot = slot_load(table_slot(vip, hash)); /* before the cache: see table_slot */
	struct l4f_flow_ref r = {};
	int cached = flow_find(flows, f, v6, &r) == 0;
	__u64 fv = 0;
	if (cached && !syn && r.hit >= 0 && flow_read(&r, &fv) == 0) {
		__u32 id = (__u32)(fv & 0xffff), prev = (__u32)(fv >> FLOW_PREV_SHIFT) & 0x1ffff;
		struct l4f_backend *b = bpf_map_lookup_elem(&l4f_backends, &id);
		if (b && (b->flags & L4F_BACKEND_LIVE) && b->vip_id == vip->id) {
			out->b = b;
			out->id = id;
			out->prev = proto == IPPROTO_TCP ? prev : 0;
			out->hash = hash; /* the VIP's hash now: it moves (the GUE source port) only if its seed or mode does */
			return 0;
		}
	}
	if ((vip->flags & L4F_VIP_DRAINING) && remember && (syn || proto != IPPROTO_TCP))
		return -1;
	__u32 id, prev = 0;
	struct l4f_backend *b = slot_backend(slot, &id, &prev);
	if (!b)
		return -1;
	if (remember && cached)
		flow_write(&r, flow_value(&r, id, prev));
	out->b = b;
	out->id = id;
	out->prev = proto == IPPROTO_TCP ? prev : 0; /* second chance is for TCP: the backend asks for a socket */
	out->hash = hash;
	return 0;
}

/* Bytes of outer header for `vip` (ipip, gre, gue; `p`: the second-chance hop, see previous_owner). */
static __always_inline __u32 outer_len(const struct l4f_vip *vip, const struct l4f_backend *p, int v6)
{
	__u32 l3 = v6 ? 40 : 20;
	__u32 l4 = vip->fwd == L4F_FWD_GRE ? 4 : vip->fwd == L4F_FWD_GUE ? 8 : 0;
	/* GUE header + private data + one hop (node-maps.h, struct l4f_gue_sc) */
	return l3 + l4 + (p ? (v6 ? 24 : 12) : 0);
}

/*
 * Writes the outer IP header at `l3` (right after the Ethernet header) and the GRE / GUE header after it, for a
 * packet of `len` bytes from `l3` on. Source: the node's address; DF set, TTL 64. Written in place: no stack copy.
 * `zeroed`: the room is known to be zero (tc's bpf_skb_adjust_room zeroes what it makes), so zero fields are not
 * stored; XDP's bpf_xdp_adjust_head leaves whatever was there. Returns 0, or -1 when the packet is too short.
 */
static __always_inline int outer_header(void *l3, void *end, const struct l4f_config *cfg, const struct l4f_vip *vip,
					const struct l4f_backend *b, const struct l4f_backend *p, __u32 hash, int v6,
					__u8 tos, __u32 len, int zeroed)
{
	__u8 proto_inner = v6 ? IPPROTO_IPV6_ : IPPROTO_IPIP_;
	__u8 next = vip->fwd == L4F_FWD_GRE ? IPPROTO_GRE_ : vip->fwd == L4F_FWD_GUE ? IPPROTO_UDP : proto_inner;
	__u32 l3len = v6 ? 40 : 20;
	__u8 *l4h;
	if (v6) {
		struct ipv6hdr *ip6 = l3;
		if ((void *)(ip6 + 1) > end)
			return -1;
		/* version 6, traffic class = the inner one, flow label from the flow hash (RFC 6438) */
		*(__u32 *)ip6 = bpf_htonl((6u << 28) | ((__u32)tos << 20) | (hash & 0xfffff));
		ip6->payload_len = bpf_htons((__u16)(len - 40));
		ip6->nexthdr = next;
		ip6->hop_limit = OUTER_TTL;
		__builtin_memcpy(&ip6->saddr, cfg->src6, 16);
		__builtin_memcpy(&ip6->daddr, b->addr, 16);
		l4h = (__u8 *)(ip6 + 1);
	} else {
		struct iphdr *ip = l3;
		if ((void *)(ip + 1) > end)
			return -1;
		__u16 *w = (__u16 *)ip;
		w[0] = bpf_htons(0x4500 | tos); /* version 4, IHL 5 */
		w[1] = bpf_htons((__u16)len);
		if (!zeroed) {
			w[2] = 0; /* id */
			w[5] = 0; /* the checksum, summed below */
		}
		w[3] = bpf_htons(0x4000); /* DF */
		w[4] = bpf_htons((OUTER_TTL << 8) | next);
		ip->saddr = cfg->src4;
		__builtin_memcpy(&ip->daddr, b->addr, 4);
		__u32 sum = 0;
#pragma unroll
		for (int i = 0; i < 10; i++)
			sum += w[i];
		ip->check = csum_fold(sum);
		l4h = (__u8 *)(ip + 1);
	}
	if (vip->fwd == L4F_FWD_GRE) {
		if ((void *)(l4h + 4) > end)
			return -1;
		/* RFC 2784: C=0, reserved 0, version 0; protocol type = the inner EtherType */
		if (!zeroed)
			*(__u16 *)l4h = 0;
		*(__u16 *)(l4h + 2) = bpf_htons(v6 ? ETH_P_IPV6 : ETH_P_IP);
	} else if (vip->fwd == L4F_FWD_GUE) {
		if ((void *)(l4h + 8) > end)
			return -1;
		*(__u16 *)(l4h + 0) = bpf_htons(GUE_SPORT_BASE | (hash & 0x3fff));
		*(__u16 *)(l4h + 2) = vip->gue_port;
		*(__u16 *)(l4h + 4) = bpf_htons((__u16)(len - l3len));
		/* checksum 0: allowed for IPv4, and for tunnels over IPv6 (RFC 6935, RFC 6936) */
		if (!zeroed)
			*(__u16 *)(l4h + 6) = 0;
		if (p) {
			struct l4f_gue_sc *g = (struct l4f_gue_sc *)(l4h + 8);
			__u8 *hop = (__u8 *)(g + 1);
			if ((void *)(hop + 16) > end)
				return -1;
			g->vers_c_hlen = v6 ? 5 : 2; /* version 0, C 0, hlen in 32-bit words after the GUE header */
			g->proto = proto_inner;
			g->type = bpf_htons(L4F_GUE_PRIV_TYPE);
			g->hop_count = 1;
			if (!zeroed) {
				g->flags = 0;
				g->hop_index = 0;
			}
			if (v6)
				__builtin_memcpy(hop, p->addr, 16);
			else
				__builtin_memcpy(hop, p->addr, 4);
		}
	}
	return 0;
}

#endif

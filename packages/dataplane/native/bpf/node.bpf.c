// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * l4fleet node: Maglev forwarding at tc ingress (clsact, direct action) on the node's interface.
 *
 * A packet addressed to this host (PACKET_HOST) whose destination is a VIP address (headers read in place):
 *   1. VIP lookup by (address, port, protocol), first, for TCP and UDP; a packet to a VIP address with no VIP
 *      on its port or protocol is dropped and counted.
 *   2. Flow affinity (Maglev §3.3 connection tracking): an LRU hash keyed by the exact 5-tuple gives the
 *      backend id a flow was given; it is kept while that backend is live for the VIP.
 *   3. Otherwise the flow hash: the kernel's jhash over nft's register layout (each field in its own 32-bit
 *      word, ports in network order followed by two zero bytes), seeded with the fleet seed and scaled onto
 *      [0, M) as nft does ((hash * M) >> 32). Bit-identical to @l4fleet/maglev slotOf, so nftables and bpf
 *      nodes of one fleet pick the same backend. The slot table (an inner array of l4f_tables) gives the id.
 *      (The hash and the slot are read before step 2, for every packet: see table_slot.)
 *   4. Forwarding per VIP: l2 (the frame unchanged to the backend's MAC: static, or resolved by the kernel's
 *      neighbour table for the backend address), or encapsulated to the backend's address with the node's
 *      own address as source, DF set, TTL 64: ipip (IPv4 proto 4 / IPv6 next header 41), gre (RFC 2784 basic
 *      4-byte header), gue (GUE variant 1, draft-ietf-intarea-gue §5: the inner IP header right after the
 *      UDP header; source port from the flow hash so ECMP among the backends spreads flows; checksum 0).
 *      The kernel routes the outer packet (bpf_redirect_neigh: FIB lookup and neighbour resolution).
 * ICMP "fragmentation needed" (IPv4 type 3 code 4) and "packet too big" (ICMPv6 type 2) to a VIP address are
 * about a backend's reply (source = the VIP): the flow is the embedded header reversed, and the ICMP goes to
 * that flow's backend, so path MTU discovery works through the fleet (RFC 1191, RFC 8201).
 * A packet that would exceed the MTU once encapsulated is dropped and counted (L4F_DROP_TOO_BIG): backends
 * advertise an MSS that leaves room for the header (docs/design/0007-bpf-dataplane.md).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "node-maps.h"

#define IPPROTO_ICMPV6_ 58
#define IPPROTO_GRE_ 47
#define IPPROTO_IPV6_ 41
#define IPPROTO_IPIP_ 4
#define IPV6_FRAGMENT_ 44
#define OUTER_TTL 64
#define GUE_SPORT_BASE 0xc000 /* the dynamic range, RFC 6335 */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, L4F_MAX_VIPS);
	__type(key, struct l4f_vip_key);
	__type(value, struct l4f_vip);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} l4f_vips SEC(".maps");

/* VIP addresses (any port): traffic to them is ours, also when no VIP matches (dropped, counted). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, L4F_MAX_VIPS);
	__type(key, struct l4f_addr_key);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} l4f_vip_addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, L4F_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct l4f_backend);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} l4f_backends SEC(".maps");

/*
 * Slot -> backend id. BPF_F_INNER_MAP: inner tables may have any size M. BPF_F_MMAPABLE: the loader writes a
 * table through a shared mapping (plain aligned 4-byte stores: each slot changes atomically), which makes
 * filling 65,537 slots a memcpy and a 16,384-slot delta a loop of stores instead of a batch syscall.
 */
struct l4f_slot_table {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, L4F_DEFAULT_TABLE_SLOTS);
	__uint(map_flags, BPF_F_INNER_MAP | BPF_F_MMAPABLE);
	__type(key, __u32);
	/* struct l4f_slot; declared as __u64 because clang emits only a forward declaration for a struct inside an
	 * inner map's definition, and libbpf then cannot size it */
	__type(value, __u64);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, L4F_MAX_TABLES);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct l4f_slot_table);
} l4f_tables SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, L4F_DEFAULT_FLOWS);
	__type(key, struct l4f_flow4);
	__type(value, struct l4f_flow_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} l4f_flows4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, L4F_DEFAULT_FLOWS);
	__type(key, struct l4f_flow6);
	__type(value, struct l4f_flow_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} l4f_flows6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct l4f_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} l4f_config SEC(".maps");

/* Written by the loader only (see struct l4f_meta). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct l4f_meta);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} l4f_meta SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, L4F_MAX_VIPS);
	__type(key, __u32);
	__type(value, struct l4f_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} l4f_vip_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, L4F_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct l4f_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} l4f_backend_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, L4F_STATS_SLOTS);
	__type(key, __u32);
	__type(value, struct l4f_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} l4f_stats SEC(".maps");

/* ---- the kernel's jhash (include/linux/jhash.h, Bob Jenkins' lookup3), as nft_jhash calls it ---- */
#define JHASH_INITVAL 0xdeadbeef
static __always_inline __u32 rol32(__u32 w, unsigned int s) { return (w << s) | (w >> (32 - s)); }
#define JHASH_MIX(a, b, c)                                                                                    \
	do {                                                                                                 \
		a -= c; a ^= rol32(c, 4); c += b;                                                            \
		b -= a; b ^= rol32(a, 6); a += c;                                                            \
		c -= b; c ^= rol32(b, 8); b += a;                                                            \
		a -= c; a ^= rol32(c, 16); c += b;                                                           \
		b -= a; b ^= rol32(a, 19); a += c;                                                           \
		c -= b; c ^= rol32(b, 4); b += a;                                                            \
	} while (0)
#define JHASH_FINAL(a, b, c)                                                                                  \
	do {                                                                                                 \
		c ^= b; c -= rol32(b, 14);                                                                   \
		a ^= c; a -= rol32(c, 11);                                                                   \
		b ^= a; b -= rol32(a, 25);                                                                   \
		c ^= b; c -= rol32(b, 16);                                                                   \
		a ^= c; a -= rol32(c, 4);                                                                    \
		b ^= a; b -= rol32(a, 14);                                                                   \
		c ^= b; c -= rol32(b, 24);                                                                   \
	} while (0)

/* jhash over `n` 32-bit words (n = 1, 4 or 10: every key length here leaves a 4-byte tail). Words are
 * the key's bytes read in CPU (little-endian) order, as the kernel's jhash reads them. */
static __always_inline __u32 jhash_words(const __u32 *k, int n, __u32 seed)
{
	__u32 a, b, c;
	a = b = c = JHASH_INITVAL + (__u32)(n * 4) + seed;
	int i = 0;
#pragma unroll
	for (int r = 0; r < 3; r++) {
		if (n - i > 3) {
			a += k[i];
			b += k[i + 1];
			c += k[i + 2];
			JHASH_MIX(a, b, c);
			i += 3;
		}
	}
	a += k[n - 1];
	JHASH_FINAL(a, b, c);
	return c;
}

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

static __always_inline int drop(struct __sk_buff *skb, __u32 reason)
{
	count(&l4f_stats, reason, skb->len);
	return TC_ACT_SHOT;
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

/* Encapsulates (ipip, gre, gue) toward `b` and hands the packet to the kernel's routing. `p`: see previous_owner. */
static __always_inline int encapsulate(struct __sk_buff *skb, const struct l4f_vip *vip, const struct l4f_backend *b,
				       const struct l4f_backend *p, __u32 hash, int v6, __u8 tos)
{
	__u32 zero = 0;
	struct l4f_config *cfg = bpf_map_lookup_elem(&l4f_config, &zero);
	if (!cfg || !(cfg->flags & (v6 ? 2 : 1)))
		return drop(skb, L4F_DROP_NO_SOURCE);
	__u32 l3 = v6 ? 40 : 20;
	__u32 l4 = vip->fwd == L4F_FWD_GRE ? 4 : vip->fwd == L4F_FWD_GUE ? 8 : 0;
	/* GUE header + private data + one hop (node-maps.h, struct l4f_gue_sc) */
	__u32 sc = p ? (v6 ? 24 : 12) : 0;
	__u32 olen = l3 + l4 + sc;
	__u32 mtu_len = 0;
	if (bpf_check_mtu(skb, 0, &mtu_len, (__s32)olen, 0) != BPF_MTU_CHK_RET_SUCCESS)
		return drop(skb, L4F_DROP_TOO_BIG);
	__u64 flags = v6 ? BPF_F_ADJ_ROOM_ENCAP_L3_IPV6 : BPF_F_ADJ_ROOM_ENCAP_L3_IPV4;
	if (vip->fwd == L4F_FWD_GRE)
		flags |= BPF_F_ADJ_ROOM_ENCAP_L4_GRE;
	else if (vip->fwd == L4F_FWD_GUE)
		flags |= BPF_F_ADJ_ROOM_ENCAP_L4_UDP;
	if (bpf_skb_adjust_room(skb, (__s32)olen, BPF_ADJ_ROOM_MAC, flags))
		return drop(skb, L4F_DROP_ENCAP_FAILED);

	/*
	 * The outer header, written in place: adjust_room has zeroed the room it made (bpf_skb_generic_push), so only
	 * the non-zero fields are stored. No stack copy and no bpf_skb_store_bytes (issue 14: the cost of a first
	 * packet).
	 */
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	__u32 outer_len = skb->len - ETH_HLEN;
	__u8 proto_inner = v6 ? IPPROTO_IPV6_ : IPPROTO_IPIP_;
	__u8 next = vip->fwd == L4F_FWD_GRE ? IPPROTO_GRE_ : vip->fwd == L4F_FWD_GUE ? IPPROTO_UDP : proto_inner;
	__u8 *l4h;
	if (v6) {
		struct ipv6hdr *ip6 = data + ETH_HLEN;
		if ((void *)(ip6 + 1) > end)
			return drop(skb, L4F_DROP_ENCAP_FAILED);
		/* version 6, traffic class = the inner one, flow label from the flow hash (RFC 6438) */
		*(__u32 *)ip6 = bpf_htonl((6u << 28) | ((__u32)tos << 20) | (hash & 0xfffff));
		ip6->payload_len = bpf_htons((__u16)(outer_len - 40));
		ip6->nexthdr = next;
		ip6->hop_limit = OUTER_TTL;
		__builtin_memcpy(&ip6->saddr, cfg->src6, 16);
		__builtin_memcpy(&ip6->daddr, b->addr, 16);
		l4h = (__u8 *)(ip6 + 1);
	} else {
		struct iphdr *ip = data + ETH_HLEN;
		if ((void *)(ip + 1) > end)
			return drop(skb, L4F_DROP_ENCAP_FAILED);
		__u16 *w = (__u16 *)ip;
		w[0] = bpf_htons(0x4500 | tos); /* version 4, IHL 5 */
		w[1] = bpf_htons((__u16)outer_len);
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
			return drop(skb, L4F_DROP_ENCAP_FAILED);
		/* RFC 2784: C=0, reserved 0, version 0; protocol type = the inner EtherType */
		*(__u16 *)(l4h + 2) = bpf_htons(v6 ? ETH_P_IPV6 : ETH_P_IP);
	} else if (vip->fwd == L4F_FWD_GUE) {
		if ((void *)(l4h + 8) > end)
			return drop(skb, L4F_DROP_ENCAP_FAILED);
		*(__u16 *)(l4h + 0) = bpf_htons(GUE_SPORT_BASE | (hash & 0x3fff));
		*(__u16 *)(l4h + 2) = vip->gue_port;
		*(__u16 *)(l4h + 4) = bpf_htons((__u16)(outer_len - l3));
		/* checksum 0: allowed for IPv4, and for tunnels over IPv6 (RFC 6935, RFC 6936) */
		if (p) {
			struct l4f_gue_sc *g = (struct l4f_gue_sc *)(l4h + 8);
			__u8 *hop = (__u8 *)(g + 1);
			if ((void *)(hop + 16) > end)
				return drop(skb, L4F_DROP_ENCAP_FAILED);
			g->vers_c_hlen = v6 ? 5 : 2; /* version 0, C 0, hlen in 32-bit words after the GUE header */
			g->proto = proto_inner;
			g->type = bpf_htons(L4F_GUE_PRIV_TYPE);
			g->hop_count = 1;
			if (v6)
				__builtin_memcpy(hop, p->addr, 16);
			else
				__builtin_memcpy(hop, p->addr, 4);
			count(&l4f_stats, L4F_SC_TAGGED, skb->len);
		}
	}
	return bpf_redirect_neigh(skb->ifindex, NULL, 0, 0);
}

static __always_inline int forward(struct __sk_buff *skb, const struct l4f_vip *vip, const struct l4f_backend *b,
				   __u32 id, __u32 prev, __u32 hash, int v6, __u8 tos)
{
	count(&l4f_backend_stats, id, skb->len);
	if (vip->fwd != L4F_FWD_L2)
		return encapsulate(skb, vip, b, previous_owner(vip, id, prev, v6), hash, v6, tos);
	if (b->flags & L4F_BACKEND_HAS_MAC) {
		/* The frame came to this host's MAC: that becomes the source, the backend's the destination. */
		void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
		struct ethhdr *eth = data;
		if ((void *)(eth + 1) > end)
			return drop(skb, L4F_DROP_ENCAP_FAILED);
		__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
		__builtin_memcpy(eth->h_dest, b->mac, ETH_ALEN);
		return bpf_redirect(skb->ifindex, 0);
	}
	/* The kernel's neighbour table resolves the backend's MAC (ARP / ND), as nft's `fwd ip to` does. */
	struct bpf_redir_neigh nh = {};
	if (v6) {
		nh.nh_family = 10; /* AF_INET6 */
		__builtin_memcpy(nh.ipv6_nh, b->addr, 16);
	} else {
		nh.nh_family = 2; /* AF_INET */
		__builtin_memcpy(&nh.ipv4_nh, b->addr, 4);
	}
	return bpf_redirect_neigh(skb->ifindex, &nh, sizeof(nh), 0);
}

/* Picks the backend of an IPv4 flow (remembered, else the table) and forwards. `remember`: 0 for ICMP errors. */
static __always_inline int serve4(struct __sk_buff *skb, const struct l4f_vip *vip, struct l4f_flow4 *f,
				  int remember, __u8 tos)
{
	__u32 hash = flow_hash4(f->saddr, f->sport, f->daddr, f->dport, vip->hash, vip->seed);
	__u64 slot = slot_load(table_slot(vip, hash)); /* before the LRU: see table_slot */
	struct l4f_flow_value *fv = bpf_map_lookup_elem(&l4f_flows4, f);
	__u32 id;
	if (fv) {
		id = fv->backend;
		__u32 fhash = fv->hash, prev = fv->prev;
		struct l4f_backend *b = bpf_map_lookup_elem(&l4f_backends, &id);
		if (b && (b->flags & L4F_BACKEND_LIVE) && b->vip_id == vip->id)
			return forward(skb, vip, b, id, f->proto == IPPROTO_TCP ? prev : 0, fhash, 0, tos);
	}
	__u32 prev = 0;
	struct l4f_backend *b = slot_backend(slot, &id, &prev);
	if (!b)
		return drop(skb, L4F_DROP_NO_BACKEND);
	if (remember) {
		struct l4f_flow_value nv = {.backend = id, .hash = hash, .prev = prev};
		bpf_map_update_elem(&l4f_flows4, f, &nv, BPF_ANY);
	}
	/* Second chance is for TCP (the backend asks for a socket); UDP is never tagged (0011). */
	return forward(skb, vip, b, id, f->proto == IPPROTO_TCP ? prev : 0, hash, 0, tos);
}

static __always_inline int serve6(struct __sk_buff *skb, const struct l4f_vip *vip, struct l4f_flow6 *f,
				  int remember, __u8 tos)
{
	__u32 hash = flow_hash6(f, vip->hash, vip->seed);
	__u64 slot = slot_load(table_slot(vip, hash)); /* before the LRU: see table_slot */
	struct l4f_flow_value *fv = bpf_map_lookup_elem(&l4f_flows6, f);
	__u32 id;
	if (fv) {
		id = fv->backend;
		__u32 fhash = fv->hash, prev = fv->prev;
		struct l4f_backend *b = bpf_map_lookup_elem(&l4f_backends, &id);
		if (b && (b->flags & L4F_BACKEND_LIVE) && b->vip_id == vip->id)
			return forward(skb, vip, b, id, f->proto == IPPROTO_TCP ? prev : 0, fhash, 1, tos);
	}
	__u32 prev = 0;
	struct l4f_backend *b = slot_backend(slot, &id, &prev);
	if (!b)
		return drop(skb, L4F_DROP_NO_BACKEND);
	if (remember) {
		struct l4f_flow_value nv = {.backend = id, .hash = hash, .prev = prev};
		bpf_map_update_elem(&l4f_flows6, f, &nv, BPF_ANY);
	}
	/* Second chance is for TCP (the backend asks for a socket); UDP is never tagged (0011). */
	return forward(skb, vip, b, id, f->proto == IPPROTO_TCP ? prev : 0, hash, 1, tos);
}

/* ICMP frag-needed about a backend's reply (VIP -> client): forward it to the backend owning that flow. */
static __always_inline int icmp4(struct __sk_buff *skb, __u32 off)
{
	__u8 icmp[2];
	if (bpf_skb_load_bytes(skb, off, icmp, 2) || icmp[0] != 3 || icmp[1] != 4)
		return drop(skb, L4F_DROP_PORT);
	struct iphdr in;
	if (bpf_skb_load_bytes(skb, off + 8, &in, sizeof(in)))
		return drop(skb, L4F_ICMP_UNMATCHED);
	__u16 ports[2];
	if (in.ihl < 5 || bpf_skb_load_bytes(skb, off + 8 + in.ihl * 4, ports, 4))
		return drop(skb, L4F_ICMP_UNMATCHED);
	struct l4f_vip_key vk = {.port = ports[0], .proto = in.protocol, .family = L4F_FAMILY_V4};
	__builtin_memcpy(vk.addr, &in.saddr, 4);
	struct l4f_vip *vip = bpf_map_lookup_elem(&l4f_vips, &vk);
	if (!vip)
		return drop(skb, L4F_ICMP_UNMATCHED);
	struct l4f_flow4 f = {.saddr = in.daddr, .daddr = in.saddr, .sport = ports[1], .dport = ports[0],
			      .proto = in.protocol};
	count(&l4f_stats, L4F_ICMP_FORWARDED, skb->len);
	return serve4(skb, vip, &f, 0, 0);
}

static __always_inline int icmp6(struct __sk_buff *skb, __u32 off)
{
	__u8 icmp[2];
	if (bpf_skb_load_bytes(skb, off, icmp, 2) || icmp[0] != 2)
		return drop(skb, L4F_DROP_PORT);
	struct ipv6hdr in;
	__u16 ports[2];
	if (bpf_skb_load_bytes(skb, off + 8, &in, sizeof(in)) || bpf_skb_load_bytes(skb, off + 48, ports, 4))
		return drop(skb, L4F_ICMP_UNMATCHED);
	struct l4f_vip_key vk = {.port = ports[0], .proto = in.nexthdr, .family = L4F_FAMILY_V6};
	__builtin_memcpy(vk.addr, &in.saddr, 16);
	struct l4f_vip *vip = bpf_map_lookup_elem(&l4f_vips, &vk);
	if (!vip)
		return drop(skb, L4F_ICMP_UNMATCHED);
	struct l4f_flow6 f = {.sport = ports[1], .dport = ports[0], .proto = in.nexthdr};
	__builtin_memcpy(f.saddr, &in.daddr, 16);
	__builtin_memcpy(f.daddr, &in.saddr, 16);
	count(&l4f_stats, L4F_ICMP_FORWARDED, skb->len);
	return serve6(skb, vip, &f, 0, 0);
}

/*
 * Makes the first `need` bytes linear (or the whole packet, when shorter), so the headers are read in place. A
 * frame from a NIC or a veth has them in its head already; only a paged one pays the pull.
 */
static __always_inline void pull_headers(struct __sk_buff *skb, __u32 need)
{
	__u32 linear = (__u32)((long)skb->data_end - (long)skb->data);
	if (linear < need && linear < skb->len)
		bpf_skb_pull_data(skb, skb->len < need ? skb->len : need);
}

/*
 * A TCP or UDP packet is looked up as a VIP (address, port, protocol) first: one hash lookup for the traffic this
 * node exists for. Anything else, or no such VIP, is ours only if its destination is a VIP address (dropped and
 * counted, or an ICMP error about a VIP flow); the node's own traffic passes.
 */
static __always_inline int ingress4(struct __sk_buff *skb)
{
	pull_headers(skb, ETH_HLEN + 60 + 4);
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + ETH_HLEN;
	if ((void *)(ip + 1) > end || ip->ihl < 5)
		return TC_ACT_OK;
	__u32 daddr = ip->daddr;
	__u8 proto = ip->protocol;
	int fragment = (ip->frag_off & bpf_htons(0x3fff)) != 0;
	__u32 l4 = ETH_HLEN + ip->ihl * 4;
	if (!fragment && (proto == IPPROTO_TCP || proto == IPPROTO_UDP)) {
		__u16 *ports = (void *)ip + ip->ihl * 4;
		if ((void *)(ports + 2) <= end) {
			struct l4f_vip_key vk = {.port = ports[1], .proto = proto, .family = L4F_FAMILY_V4};
			__builtin_memcpy(vk.addr, &daddr, 4);
			struct l4f_vip *vip = bpf_map_lookup_elem(&l4f_vips, &vk);
			if (vip) {
				count(&l4f_vip_stats, vip->id, skb->len);
				struct l4f_flow4 f = {.saddr = ip->saddr, .daddr = daddr, .sport = ports[0],
						      .dport = ports[1], .proto = proto};
				return serve4(skb, vip, &f, 1, ip->tos);
			}
		}
	}
	struct l4f_addr_key ak = {.family = L4F_FAMILY_V4};
	__builtin_memcpy(ak.addr, &daddr, 4);
	if (!bpf_map_lookup_elem(&l4f_vip_addrs, &ak))
		return TC_ACT_OK;
	if (fragment)
		return drop(skb, L4F_DROP_FRAGMENT);
	if (proto == IPPROTO_ICMP)
		return icmp4(skb, l4);
	return drop(skb, L4F_DROP_PORT);
}

static __always_inline int ingress6(struct __sk_buff *skb)
{
	pull_headers(skb, ETH_HLEN + 40 + 4);
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ipv6hdr *ip = data + ETH_HLEN;
	if ((void *)(ip + 1) > end)
		return TC_ACT_OK;
	__u8 next = ip->nexthdr;
	if (next == IPPROTO_TCP || next == IPPROTO_UDP) {
		__u16 *ports = (void *)(ip + 1);
		if ((void *)(ports + 2) <= end) {
			struct l4f_vip_key vk = {.port = ports[1], .proto = next, .family = L4F_FAMILY_V6};
			__builtin_memcpy(vk.addr, &ip->daddr, 16);
			struct l4f_vip *vip = bpf_map_lookup_elem(&l4f_vips, &vk);
			if (vip) {
				count(&l4f_vip_stats, vip->id, skb->len);
				struct l4f_flow6 f = {.sport = ports[0], .dport = ports[1], .proto = next};
				__builtin_memcpy(f.saddr, &ip->saddr, 16);
				__builtin_memcpy(f.daddr, &ip->daddr, 16);
				__u8 tc = (__u8)((bpf_ntohl(*(__u32 *)ip) >> 20) & 0xff);
				return serve6(skb, vip, &f, 1, tc);
			}
		}
	}
	struct l4f_addr_key ak = {.family = L4F_FAMILY_V6};
	__builtin_memcpy(ak.addr, &ip->daddr, 16);
	if (!bpf_map_lookup_elem(&l4f_vip_addrs, &ak))
		return TC_ACT_OK;
	if (next == IPPROTO_ICMPV6_)
		return icmp6(skb, ETH_HLEN + 40);
	return drop(skb, next == IPV6_FRAGMENT_ ? L4F_DROP_FRAGMENT : L4F_DROP_PORT);
}

SEC("tc")
int l4f_node(struct __sk_buff *skb)
{
	if (skb->pkt_type != PACKET_HOST)
		return TC_ACT_OK; /* flooded frames for other hosts: never forward them (duplicates at backends) */
	if (skb->protocol == bpf_htons(ETH_P_IP))
		return ingress4(skb);
	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		return ingress6(skb);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

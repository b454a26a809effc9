// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * l4fleet backend: removes the fleet's encapsulation at tc ingress (clsact, direct action) so a backend
 * without ipip/gre/fou modules receives the client's packet to the VIP as if it had been routed to it, and
 * answers from the VIP straight to the client (direct server return).
 *
 * Accepted (the outer family is the backend address's; the inner family is the VIP's; all four pairs):
 *   ipip  outer IPv4 proto 4 (IPv4 inner) or 41 (IPv6 inner); outer IPv6 next header 41 or 4
 *   gre   RFC 2784 basic header: flags/version word 0 (no checksum, key or sequence), protocol 0x0800/0x86DD
 *   gue   UDP to the configured port, GUE variant 1 (draft-ietf-intarea-gue §5): the inner IP header right
 *         after the UDP header, told apart by its version nibble; any source port (the nodes put the flow hash
 *         there), the UDP checksum is not checked (0 is what the nodes send)
 * Only from a node in the allow list: an encapsulated packet of an enabled mode from anyone else is dropped
 * and counted (a backend must not be a reflector for spoofed VIP traffic), and so is one whose inner
 * destination is not one of this host's VIPs. Everything else goes up the stack untouched.
 *
 * Decapsulation is one bpf_skb_adjust_room(-hdr, BPF_ADJ_ROOM_MAC, DECAP_L3_*): the kernel removes the room
 * behind the MAC header, fixes CHECKSUM_COMPLETE, grows gso_size, and (DECAP_L3_*) sets skb->protocol to the
 * inner family, which is what makes 6-in-4 and 4-in-6 free.
 *
 * Second chance (backend-second-chance.h; docs/design/0011-second-chance.md; GLB Director's idea): a GUE packet
 * may name the slot's previous owner in GUE private data (layout in node-maps.h, struct l4f_gue_sc). For such a
 * TCP packet that is not a SYN, the program asks the kernel for a socket (bpf_skc_lookup_tcp: established, time-wait and request
 * sockets; a listener counts only for a valid SYN cookie); for an ICMP frag-needed / packet-too-big, a socket for the
 * segment it quotes (path MTU discovery of a rescued flow). With none, and the second chance unused, the packet
 * goes on to the previous owner as it is: outer source = this backend's address (the outer destination it came
 * to), outer destination = the previous owner, the hop index set to "used" (it is never forwarded again: a loop
 * is impossible), and out through the kernel's routing (bpf_redirect_neigh). Everything else is decapsulated.
 * The previous owner accepts it because its source is in its allow list as a peer (`--peers`).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

/* Kernel 6.3+ (Debian 12's 6.1 uapi headers lack them; the running kernel accepts them). */
#ifndef BPF_F_ADJ_ROOM_DECAP_L3_IPV4
#define BPF_F_ADJ_ROOM_DECAP_L3_IPV4 (1ULL << 7)
#endif
#ifndef BPF_F_ADJ_ROOM_DECAP_L3_IPV6
#define BPF_F_ADJ_ROOM_DECAP_L3_IPV6 (1ULL << 8)
#endif

#include "node-maps.h" /* the GUE second-chance layout the nodes write */

#define IPPROTO_GRE_ 47
#define GRE_HDR_LEN 4
#define UDP_HDR_LEN 8

/* Encapsulation modes; `modes` in the config is a bit set of (1 << MODE_*). Order = counter layout. */
enum { MODE_GUE = 0, MODE_IPIP = 1, MODE_GRE = 2, MODE_COUNT = 3 };

/*
 * Counter slots. DECAP_BASE + mode * 4 + outer_is_v6 * 2 + inner_is_v6: 12 slots, then the others.
 * The layout is mirrored in src/backend/counters.ts; append only.
 */
enum {
	CNT_DECAP_BASE = 0,
	CNT_STRANGER = 12,    /* encapsulated (enabled mode) but the outer source is not a node */
	CNT_MALFORMED = 13,   /* from a node, but not a header this program accepts (GRE flags, GUE variant 0, fragment;
			       * a second-chance header behind outer IPv4 options) */
	CNT_NOT_VIP = 14,     /* from a node, inner destination not one of this host's VIPs */
	CNT_PASSED = 15,      /* not the fleet's encapsulation: handed to the stack unchanged */
	CNT_DECAP_FAILED = 16, /* bpf_skb_adjust_room refused (counted, dropped) */
	CNT_SC_FORWARDED = 17, /* second chance: no socket here, sent on to the previous owner */
	CNT_SC_RECEIVED = 18,  /* arrived with its second chance used and found its socket here (a rescued flow) */
	CNT_SC_MISS = 19,      /* second chance used and no socket here either: decapsulated (the stack resets it) */
	CNT_SC_FAILED = 20,    /* the inner headers could not be pulled, or the forward written or sent: dropped */
	CNT_SC_LOCAL = 21,     /* named a previous owner, but a SYN or the socket is here: decapsulated */
	CNT_SLOTS = 32,
};

struct counter {
	__u64 packets;
	__u64 bytes;
};

struct config {
	__u32 modes;    /* bit set of 1 << MODE_* */
	__u16 gue_port; /* network byte order */
	__u16 flags;    /* CFG_* */
};

/* config.flags: second chance is on unless this bit is set (zero = the default). */
enum { CFG_NO_SECOND_CHANCE = 1 };
/* Values of the allow lists l4fb_nodes4/6: a fleet node, a peer backend (a second chance's sender), or both. */
enum { SRC_NODE = 1, SRC_PEER = 2 };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
} l4fb_config SEC(".maps");

/* The fleet's node and peer backend addresses (outer sources allowed); value SRC_NODE | SRC_PEER. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u8);
} l4fb_nodes4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct in6_addr);
	__type(value, __u8);
} l4fb_nodes6 SEC(".maps");

/* This host's VIPs (inner destinations allowed). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u8);
} l4fb_vips4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct in6_addr);
	__type(value, __u8);
} l4fb_vips6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CNT_SLOTS);
	__type(key, __u32);
	__type(value, struct counter);
} l4fb_counters SEC(".maps");

static __always_inline void count(__u32 slot, __u32 len)
{
	struct counter *c = bpf_map_lookup_elem(&l4fb_counters, &slot);

	if (c) {
		c->packets += 1;
		c->bytes += len;
	}
}

static __always_inline int pass(struct __sk_buff *skb)
{
	count(CNT_PASSED, skb->len);
	return TC_ACT_OK;
}

static __always_inline int drop(struct __sk_buff *skb, __u32 slot)
{
	count(slot, skb->len);
	return TC_ACT_SHOT;
}

/*
 * Makes the first `need` bytes linear (or the whole packet, when shorter), so the headers are read in place, as the
 * node's pull_headers does. A NIC with paged receive (GRO into page fragments) leaves in the head only the headers
 * it parsed, the outer ones: the tunnel's inner headers sit in the pages, where direct packet access cannot see them.
 * Packet pointers taken before a call are invalid after it.
 */
static __always_inline void pull_headers(struct __sk_buff *skb, __u32 need)
{
	__u32 linear = (__u32)((long)skb->data_end - (long)skb->data);

	if (linear < need && linear < skb->len)
		bpf_skb_pull_data(skb, skb->len < need ? skb->len : need);
}

/*
 * What a fleet packet's headers take after the outer IP header, at most: UDP 8 (GRE 4), GUE second-chance data 24
 * (IPv6 hop), the inner IP header 60 (IPv4 with options) and the TCP header 20 (second_chance's socket lookup).
 */
#define TUNNEL_HEADERS_MAX (UDP_HDR_LEN + 24 + 60 + 20)

/* The outer header as parsed: which mode, how many bytes to remove, and what the tunnel says is inside. */
struct outer {
	__u32 mode;
	__u32 hdr_len;    /* outer L3 + L4/tunnel header, removed by the decap */
	__u32 inner_v6;   /* from the protocol field (ipip, gre); GUE sets it from the version nibble */
	__u32 outer_v6;
	__u32 sc;         /* GUE with a second-chance hop (struct l4f_gue_sc) */
	__u32 sc_used;    /* its hop index says used, or it came from a peer */
	__u32 l3_len;     /* the outer IP header's length */
};

/* Which enabled mode (if any) an outer protocol/next-header value and what follows it select. */
static __always_inline int classify(struct __sk_buff *skb, const struct config *cfg, __u8 proto, __u32 l3_len,
				    struct outer *o)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	__u32 l4 = sizeof(struct ethhdr) + l3_len;

	if (proto == IPPROTO_UDP && (cfg->modes & (1u << MODE_GUE))) {
		struct udphdr *udp = data + l4;

		if ((void *)(udp + 1) > end)
			return -1;
		if (udp->dest != cfg->gue_port)
			return -1;
		o->mode = MODE_GUE;
		o->hdr_len = l3_len + UDP_HDR_LEN;
		return 0;
	}
	if (proto == IPPROTO_GRE_ && (cfg->modes & (1u << MODE_GRE))) {
		o->mode = MODE_GRE;
		o->hdr_len = l3_len + GRE_HDR_LEN;
		return 0;
	}
	if ((proto == IPPROTO_IPIP || proto == IPPROTO_IPV6) && (cfg->modes & (1u << MODE_IPIP))) {
		o->mode = MODE_IPIP;
		o->hdr_len = l3_len;
		o->inner_v6 = proto == IPPROTO_IPV6;
		return 0;
	}
	return -1;
}

/* Checks what sits behind the outer header; 0 = decapsulate, else the counter slot to drop with. */
static __always_inline int check_inner(struct __sk_buff *skb, struct outer *o)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	__u32 off = sizeof(struct ethhdr) + (o->hdr_len & 0xff);
	__u8 *inner = data + off;

	if (o->mode == MODE_GRE) {
		/* RFC 2784 §2: C bit, reserved bits and version all 0 in the basic header the nodes send. */
		__be16 *gre = data + off - GRE_HDR_LEN;

		if ((void *)(gre + 2) > end)
			return CNT_MALFORMED;
		if (gre[0] != 0)
			return CNT_MALFORMED;
		if (gre[1] == bpf_htons(ETH_P_IP))
			o->inner_v6 = 0;
		else if (gre[1] == bpf_htons(ETH_P_IPV6))
			o->inner_v6 = 1;
		else
			return CNT_MALFORMED;
	}
	if ((void *)(inner + 1) > end)
		return CNT_MALFORMED;
	if (o->mode == MODE_GUE && (*inner >> 6) == 0) {
		/* GUE variant 0: only the second-chance header the nodes write (node-maps.h). */
		struct l4f_gue_sc *g = (void *)inner;
		__u32 words = o->outer_v6 ? 5 : 2;

		if ((void *)(g + 1) > end || g->vers_c_hlen != words || g->flags != 0 ||
		    g->type != bpf_htons(L4F_GUE_PRIV_TYPE) || g->hop_count != 1 || g->hop_index > 1)
			return CNT_MALFORMED;
		if (g->proto == IPPROTO_IPIP)
			o->inner_v6 = 0;
		else if (g->proto == IPPROTO_IPV6)
			o->inner_v6 = 1;
		else
			return CNT_MALFORMED;
		o->sc = 1;
		o->sc_used |= g->hop_index >= g->hop_count;
		o->hdr_len += 4 + words * 4;
		off = sizeof(struct ethhdr) + (o->hdr_len & 0xff);
		inner = data + off;
		if ((void *)(inner + 1) > end || (*inner >> 4) != (o->inner_v6 ? 6 : 4))
			return CNT_MALFORMED;
	} else if (o->mode == MODE_GUE) {
		/* Variant 1: 0100 = IPv4, 0110 = IPv6; variant 0 (a GUE header) is not what the nodes send. */
		if ((*inner >> 4) == 4)
			o->inner_v6 = 0;
		else if ((*inner >> 4) == 6)
			o->inner_v6 = 1;
		else
			return CNT_MALFORMED;
	}
	if (o->inner_v6) {
		struct ipv6hdr *ip6 = (void *)inner;

		if ((void *)(ip6 + 1) > end || ip6->version != 6)
			return CNT_MALFORMED;
		if (!bpf_map_lookup_elem(&l4fb_vips6, &ip6->daddr))
			return CNT_NOT_VIP;
	} else {
		struct iphdr *ip = (void *)inner;

		if ((void *)(ip + 1) > end || ip->version != 4 || ip->ihl < 5)
			return CNT_MALFORMED;
		if (!bpf_map_lookup_elem(&l4fb_vips4, &ip->daddr))
			return CNT_NOT_VIP;
	}
	return 0;
}

#include "backend-second-chance.h"

SEC("tc")
int l4fb_ingress(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct outer o = {};
	__u32 zero = 0;
	struct config *cfg;
	int verdict;

	if ((void *)(eth + 1) > end || skb->pkt_type != PACKET_HOST)
		return pass(skb);
	cfg = bpf_map_lookup_elem(&l4fb_config, &zero);
	if (!cfg || cfg->modes == 0)
		return pass(skb);
	__be16 h_proto = eth->h_proto;

	if (h_proto == bpf_htons(ETH_P_IP)) {
		/* The outer IP header, and the UDP header of a UDP packet (any NIC has them linear: a no-op); the rest
		 * once the packet is the fleet's. Not more: a TCP packet's head may end at its own headers. */
		pull_headers(skb, sizeof(struct ethhdr) + sizeof(struct iphdr));
		data = (void *)(long)skb->data;
		end = (void *)(long)skb->data_end;
		struct iphdr *ip = data + sizeof(struct ethhdr);
		__u32 l3_len;

		if ((void *)(ip + 1) > end || ip->ihl < 5)
			return pass(skb);
		__be16 frag_off = ip->frag_off;
		__u8 proto = ip->protocol;
		__u32 saddr = ip->saddr;
		/* A non-first fragment has no transport header: what classify would read as ports is payload. Not the
		 * fleet's either (the nodes set DF), so the stack has it, as any fragment of unrelated traffic. */
		if (frag_off & bpf_htons(0x1fff))
			return pass(skb);
		l3_len = (ip->ihl & 0xf) * 4;
		if (proto == IPPROTO_UDP)
			pull_headers(skb, sizeof(struct ethhdr) + l3_len + UDP_HDR_LEN);
		if (classify(skb, cfg, proto, l3_len, &o) != 0)
			return pass(skb);
		__u8 *src = bpf_map_lookup_elem(&l4fb_nodes4, &saddr);
		if (!src)
			return drop(skb, CNT_STRANGER);
		o.sc_used = !(*src & SRC_NODE);
		o.l3_len = l3_len;
		/* MF: the nodes set DF and never fragment; a first piece cannot be decapsulated. */
		if (frag_off & bpf_htons(0x2000))
			return drop(skb, CNT_MALFORMED);
	} else if (h_proto == bpf_htons(ETH_P_IPV6)) {
		pull_headers(skb, sizeof(struct ethhdr) + sizeof(struct ipv6hdr) + UDP_HDR_LEN);
		data = (void *)(long)skb->data;
		end = (void *)(long)skb->data_end;
		struct ipv6hdr *ip6 = data + sizeof(struct ethhdr);

		if ((void *)(ip6 + 1) > end)
			return pass(skb);
		/* Extension headers are not followed: the nodes send the tunnel protocol as the next header. */
		if (classify(skb, cfg, ip6->nexthdr, sizeof(*ip6), &o) != 0)
			return pass(skb);
		__u8 *src = bpf_map_lookup_elem(&l4fb_nodes6, &ip6->saddr);
		if (!src)
			return drop(skb, CNT_STRANGER);
		o.sc_used = !(*src & SRC_NODE);
		o.outer_v6 = 1;
		o.l3_len = sizeof(*ip6);
	} else {
		return pass(skb);
	}

	/* A node's packet: its tunnel and inner headers linear too (check_inner and second_chance read them in place). */
	pull_headers(skb, sizeof(struct ethhdr) + (o.hdr_len & 0xff) + TUNNEL_HEADERS_MAX);
	verdict = check_inner(skb, &o);
	if (verdict != 0)
		return drop(skb, verdict);
	if (o.sc && !(cfg->flags & CFG_NO_SECOND_CHANCE)) {
		verdict = second_chance(skb, &o);
		if (verdict >= 0)
			return verdict;
	}

	__u32 len = skb->len;
	if (bpf_skb_adjust_room(skb, -(__s32)o.hdr_len, BPF_ADJ_ROOM_MAC,
				o.inner_v6 ? BPF_F_ADJ_ROOM_DECAP_L3_IPV6 : BPF_F_ADJ_ROOM_DECAP_L3_IPV4))
		return drop(skb, CNT_DECAP_FAILED);
	if (o.inner_v6 != o.outer_v6) {
		/* skb->protocol is already the inner family (DECAP_L3_*); keep the frame honest for taps after us. */
		__be16 proto = o.inner_v6 ? bpf_htons(ETH_P_IPV6) : bpf_htons(ETH_P_IP);

		bpf_skb_store_bytes(skb, __builtin_offsetof(struct ethhdr, h_proto), &proto, sizeof(proto), 0);
	}
	count(CNT_DECAP_BASE + o.mode * 4 + o.outer_v6 * 2 + o.inner_v6, len);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

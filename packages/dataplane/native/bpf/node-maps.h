/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The l4fleet node data plane's map layout, shared by node.bpf.c (the tc and XDP programs) and native/bpf-loader/ (the map
 * writer) and mirrored byte for byte in src/bpf/codec.ts. Every map is pinned by name under the driver's pin
 * directory, so a restarted agent finds the forwarding state where it left it. Changing a struct here changes
 * the pinned maps' value sizes: a node then has to be started with removeState once (the loader refuses to
 * reuse a pinned map whose layout differs).
 */
#ifndef L4F_NODE_MAPS_H
#define L4F_NODE_MAPS_H

#include <linux/types.h>

#define L4F_MAX_VIPS 4096
/* Backend ids: one per (VIP, backend address), never handed to another backend while it is remembered. */
#define L4F_MAX_BACKENDS 65536
/* Two slot tables per VIP (index vip_id * 2 + generation): a whole-table swap fills the idle one, then flips. */
#define L4F_MAX_TABLES (2 * L4F_MAX_VIPS)
#define L4F_DEFAULT_TABLE_SLOTS 65537
/* Flows remembered per family by default (flowTableSize), in sets of L4F_FLOW_WAYS (l4f_flows4 / l4f_flows6). */
#define L4F_DEFAULT_FLOWS 65536
#define L4F_FLOW_WAYS 4
/*
 * Source prefixes over all VIPs (l4f_src_ranges): twice @l4fleet/config's MAX_TOTAL_SOURCE_RANGES (16,384), so an
 * apply that replaces every prefix can add the new ones before it deletes the old (make before break). An LPM trie
 * allocates an element per prefix present (BPF_F_NO_PREALLOC), so the bound costs nothing until used.
 */
#define L4F_MAX_SOURCE_RANGES 32768
/* A slot without a backend (Maglev NO_BACKEND). */
#define L4F_NO_BACKEND 0xffffffffu

enum l4f_family { L4F_FAMILY_V4 = 4, L4F_FAMILY_V6 = 6 };
enum l4f_hash { L4F_HASH_5TUPLE = 0, L4F_HASH_SOURCE_IP = 1 };
/* Forwarding per VIP (the pool's `forwarding`). */
enum l4f_fwd { L4F_FWD_L2 = 0, L4F_FWD_IPIP = 1, L4F_FWD_GRE = 2, L4F_FWD_GUE = 3 };
/* vip.flags */
enum {
	L4F_VIP_SOURCE_RANGES = 1, /* the VIP admits only the sources in l4f_src_ranges under its id */
	L4F_VIP_DRAINING = 2,      /* vips[].state draining: no new connection, no UDP flow the node does not remember */
};
/* backend.flags */
enum { L4F_BACKEND_LIVE = 1, L4F_BACKEND_HAS_MAC = 2 };

/*
 * Counter slots of l4f_stats (per CPU). Drops first, then events. Mirrored in src/bpf/codec.ts; append only.
 */
enum {
	L4F_DROP_PORT = 0,       /* to a VIP address, but no VIP on that port/protocol (or another protocol) */
	L4F_DROP_NO_BACKEND = 1, /* the slot has no backend */
	L4F_DROP_FRAGMENT = 2,   /* an IPv4 fragment, or IPv6 with a fragment header first, to a VIP address: no ports to
				  * hash (other IPv6 extension headers count as L4F_DROP_PORT) */
	L4F_DROP_TOO_BIG = 3,    /* would exceed the interface MTU once encapsulated */
	L4F_DROP_NO_SOURCE = 4,  /* encapsulation of a family the node has no source address for */
	L4F_DROP_ENCAP_FAILED = 5, /* bpf_skb_adjust_room / store refused */
	L4F_DROP_SOURCE = 6,     /* a TCP / UDP packet to a VIP from a source outside its source ranges */
	L4F_ICMP_FORWARDED = 8,  /* frag-needed / packet-too-big for a VIP flow, sent to the flow's backend */
	L4F_ICMP_UNMATCHED = 9,  /* such an ICMP error whose embedded header is no VIP flow (dropped) */
	L4F_SC_TAGGED = 10,      /* encapsulated (gue) with the slot's previous owner in the GUE private data */
	L4F_XDP_TX = 11,         /* forwarded by the XDP program (XDP_TX); every other packet went on to tc */
	L4F_ICMP_ECHO = 12,      /* an echo request to a VIP address, answered by this node (node.bpf.c echo_reply) */
	L4F_STATS_SLOTS = 16,
};

struct l4f_counter {
	__u64 packets;
	__u64 bytes;
};

struct l4f_vip_key {
	__u8 addr[16]; /* IPv4: the first 4 bytes, the rest 0 */
	__u16 port;    /* network byte order */
	__u8 proto;    /* IPPROTO_TCP / IPPROTO_UDP */
	__u8 family;   /* L4F_FAMILY_* */
};

struct l4f_vip {
	__u32 id;    /* index of the VIP's counters; tables vip_id * 2 + 0/1 */
	__u32 table; /* the live slot table's index in l4f_tables */
	__u32 size;  /* M: slots in that table */
	__u32 seed;  /* fleet hash seed */
	__u8 hash;   /* L4F_HASH_* */
	__u8 fwd;    /* L4F_FWD_* */
	__u16 gue_port; /* network byte order; GUE destination port */
	__u8 flags;     /* L4F_VIP_*; was padding, so VIP entries of older objects read as 0 (no source ranges) */
	__u8 pad[3];
};

/*
 * l4f_src_ranges (an LPM trie, Documentation/bpf/map_lpm_trie.rst): one entry per (VIP, source prefix). The data
 * after `prefixlen` is matched bit by bit from its first byte, so a prefix of L bits of a VIP is the entry
 * {32 + L, vip id, address}: the 32 bits of the id always match whole (the id's byte order does not matter, every
 * entry and every lookup writes it the same way), and one lookup of {32 + 32 or 32 + 128, id, the packet's source}
 * answers "is this source admitted by this VIP". IPv4: the first 4 bytes of `addr`, the rest 0. The value is not
 * read (1).
 */
struct l4f_src_key {
	__u32 prefixlen;
	__u32 vip_id;
	__u8 addr[16];
};

struct l4f_addr_key {
	__u8 addr[16];
	__u8 family;
	__u8 pad[3];
};

struct l4f_backend {
	__u8 addr[16];
	__u8 mac[6];
	__u8 family;
	__u8 flags; /* L4F_BACKEND_* */
	__u32 vip_id;
};

/* The node's own addresses: the outer source of encapsulated packets. */
struct l4f_config {
	__u8 src6[16];
	__u32 src4;   /* network byte order */
	__u32 flags;  /* bit 0: src4 set, bit 1: src6 set */
};

struct l4f_flow4 {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 pad[3];
};

struct l4f_flow6 {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 pad[3];
};

/*
 * One slot of a VIP's table. `prev` is second chance (docs/design/0011-second-chance.md): the slot's previous
 * owner's backend id PLUS ONE, 0 = none, so a freshly created (zeroed) table has no previous owners. The loader
 * writes `backend` at byte 8 s of the table's mapping and `prev` at 8 s + 4 (a 4-byte value took 8 bytes anyway:
 * arrays round values up to 8).
 */
struct l4f_slot {
	__u32 backend;
	__u32 prev;
};

/*
 * GUE private data carrying the previous owner (draft-ietf-intarea-gue §3.3; the idea is GLB Director's
 * "second chance" hop list). Only on `gue` VIPs whose slot has a previous owner; everything else stays GUE
 * variant 1 (no GUE header). Layout after the UDP header, all network order:
 *   GUE header (4)   ver 0 (2 bits) | C 0 (1) | hlen (5: 32-bit words after this header) ; proto = inner IP
 *                    protocol (4 IPv4 / 41 IPv6) ; flags 0 (16)
 *   private (4)      type 0x4c46 ("LF") (16) ; hop index (8): 0 = unused, = hop count once used ; hop count (8) = 1
 *   hop (4 / 16)     the previous owner's address, the outer family
 * hlen = 2 (IPv4) / 5 (IPv6); 12 / 24 bytes more than plain GUE.
 */
#define L4F_GUE_PRIV_TYPE 0x4c46
struct l4f_gue_sc {
	__u8 vers_c_hlen;
	__u8 proto;
	__u16 flags;
	__u16 type;
	__u8 hop_index;
	__u8 hop_count;
};

/* l4f_ifaces: an interface the XDP program runs on (key: ifindex). */
struct l4f_iface {
	__u8 mac[6];
	__u8 pad[2];
};

/* What the loader attached last: a restart with the same object skips loading it (l4f_meta, one entry). */
struct l4f_meta {
	__u64 object_hash; /* FNV-1a of the object file */
	__u32 prog_id;     /* the program it attached */
	__u32 flows;       /* FLOW_ENTRIES it was started with */
};

/*
 * One remembered flow in a set of the flow cache (l4f_flows4 / l4f_flows6; node-flows.h, docs/design/0007 "Flow
 * cache"): two 8-byte words, each stored whole.
 *   tag    fingerprint of the 5-tuple (flow_find, node-flows.h), bit 0 always set; 0 = an empty entry
 *   value  bits 0-15 backend id, bits 16-32 previous owner id + 1 (second chance; 0 = none), bits 33-62 the tag's
 *          top 30 bits (a value is trusted only with its own flow's tag), bit 63 referenced (CLOCK)
 */
struct l4f_flow_entry {
	__u64 tag;
	__u64 value;
};

/* A set: one 64-byte cache line, so a first packet touches one line of the cache (a hash map's bucket, element and
 * list neighbours were three or four). */
struct l4f_flow_set {
	struct l4f_flow_entry way[L4F_FLOW_WAYS];
};

#endif

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The node program's maps (node.bpf.c: the tc and XDP programs of one object, so both use the same maps). Every
 * map is pinned by name (LIBBPF_PIN_BY_NAME): a restarted loader reuses them. Layouts: node-maps.h.
 */
#ifndef L4F_NODE_MAP_DEFS_H
#define L4F_NODE_MAP_DEFS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "node-maps.h"

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

/*
 * The VIPs' source ranges (struct l4f_src_key), read only for a VIP with L4F_VIP_SOURCE_RANGES. An LPM trie must be
 * created with BPF_F_NO_PREALLOC (kernel/bpf/lpm_trie.c trie_alloc refuses otherwise). Pins of an object older
 * than this map lack it: libbpf creates and pins it at that start (the loader's full path), like l4f_ifaces.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, L4F_MAX_SOURCE_RANGES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct l4f_src_key);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} l4f_src_ranges SEC(".maps");

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
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, L4F_DEFAULT_FLOWS / L4F_FLOW_WAYS); /* sets: the loader sizes it (flowTableSize) */
	__uint(map_flags, BPF_F_MMAPABLE);                       /* the loader counts and clears it in place */
	__type(key, __u32);
	__type(value, struct l4f_flow_set);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} l4f_flows4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, L4F_DEFAULT_FLOWS / L4F_FLOW_WAYS); /* sets: the loader sizes it (flowTableSize) */
	__uint(map_flags, BPF_F_MMAPABLE);                       /* the loader counts and clears it in place */
	__type(key, __u32);
	__type(value, struct l4f_flow_set);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} l4f_flows6 SEC(".maps");

/* The flow maps' number of sets, written by the loader before the load (the map's max_entries, which a program
 * cannot read): a constant to the verifier. Its own section, so the loader finds it at offset 0. */
const volatile __u32 l4f_flow_sets SEC(".rodata.flows") = L4F_DEFAULT_FLOWS / L4F_FLOW_WAYS;

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

/* The MAC of each interface an XDP program runs on (ifindex -> l4f_iface), written by the loader at every
 * start: XDP sees frames for other hosts too (a bridge floods unknown unicast), and only ours are forwarded. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct l4f_iface);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} l4f_ifaces SEC(".maps");

#endif

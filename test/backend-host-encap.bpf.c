// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Test only: a stand-in for a balancer node, so test/backend-host.int.test.ts does not depend on the node-side
 * driver. At tc ingress of the "node" namespace it wraps every packet to VIP4/VIP6 in the fleet's encapsulation
 * (the format l4fleet's nodes send: see packages/dataplane/native/bpf/backend.bpf.c) and sends it back out of the
 * same interface towards BACKEND. Compiled once per case with:
 *   -DMODE=0|1|2 (gue, ipip, gre) -DOUTER6=0|1 -DNODE_ADDR=w,.. -DBACKEND_ADDR=w,.. (1 or 4 words, OUTER6's family)
 *   -DVIP4_ADDR=w -DVIP6_ADDR=w,w,w,w -DGUE_PORT=n
 * Counters (array l4fbt_cnt): [0] packets encapsulated, [1] packets seen whose source is a VIP (replies that
 * came back through the node: direct server return means this stays 0).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define MODE_GUE 0
#define MODE_IPIP 1
#define MODE_GRE 2

#if OUTER6
#define OUTER_LEN 40
#define ENCAP_L3 BPF_F_ADJ_ROOM_ENCAP_L3_IPV6
#else
#define OUTER_LEN 20
#define ENCAP_L3 BPF_F_ADJ_ROOM_ENCAP_L3_IPV4
#endif
#if MODE == MODE_GUE
#define TUN_LEN 8
#define ENCAP_L4 BPF_F_ADJ_ROOM_ENCAP_L4_UDP
#elif MODE == MODE_GRE
#define TUN_LEN 4
#define ENCAP_L4 BPF_F_ADJ_ROOM_ENCAP_L4_GRE
#else
#define TUN_LEN 0
#define ENCAP_L4 0
#endif
#define HDR_LEN (OUTER_LEN + TUN_LEN)

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} l4fbt_cnt SEC(".maps");

/* Addresses as 32-bit words of network-order bytes read in host order: compared and stored as immediates (a
 * static const array would land in .rodata.cst16, which libbpf 1.1 cannot load). */
#define ADDR_WORDS(name, ...) const __u32 name[] = {__VA_ARGS__}

static __always_inline void bump(__u32 i)
{
	__u64 *v = bpf_map_lookup_elem(&l4fbt_cnt, &i);

	if (v)
		__sync_fetch_and_add(v, 1);
}

static __always_inline int same(const void *a, const __u32 *b, int words)
{
	const __u32 *w = a;

	for (int i = 0; i < words; i++)
		if (w[i] != b[i])
			return 0;
	return 1;
}

SEC("tc")
int l4fbt_encap(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	int inner6;
	ADDR_WORDS(vip4, VIP4_ADDR);
	ADDR_WORDS(vip6, VIP6_ADDR);
	ADDR_WORDS(node_addr, NODE_ADDR);
	ADDR_WORDS(backend_addr, BACKEND_ADDR);

	if ((void *)(eth + 1) > end)
		return TC_ACT_OK;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > end)
			return TC_ACT_OK;
		if (same(&ip->saddr, vip4, 1))
			bump(1);
		if (!same(&ip->daddr, vip4, 1))
			return TC_ACT_OK;
		inner6 = 0;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end)
			return TC_ACT_OK;
		if (same(&ip6->saddr, vip6, 4))
			bump(1);
		if (!same(&ip6->daddr, vip6, 4))
			return TC_ACT_OK;
		inner6 = 1;
	} else {
		return TC_ACT_OK;
	}

	__u32 inner_len = skb->len - sizeof(struct ethhdr);
	__u8 hdr[HDR_LEN] = {};
	__u8 *tun __attribute__((unused)) = hdr + OUTER_LEN;
	__u8 proto = MODE == MODE_GUE ? IPPROTO_UDP : MODE == MODE_GRE ? 47 : inner6 ? IPPROTO_IPV6 : IPPROTO_IPIP;

#if OUTER6
	struct ipv6hdr *o6 = (void *)hdr;
	o6->version = 6;
	o6->payload_len = bpf_htons(inner_len + TUN_LEN);
	o6->nexthdr = proto;
	o6->hop_limit = 64;
	__builtin_memcpy(&o6->saddr, node_addr, 16);
	__builtin_memcpy(&o6->daddr, backend_addr, 16);
#else
	struct iphdr *o4 = (void *)hdr;
	o4->version = 4;
	o4->ihl = 5;
	o4->tot_len = bpf_htons(inner_len + HDR_LEN);
	o4->frag_off = bpf_htons(0x4000); /* DF */
	o4->ttl = 64;
	o4->protocol = proto;
	__builtin_memcpy(&o4->saddr, node_addr, 4);
	__builtin_memcpy(&o4->daddr, backend_addr, 4);
	__u32 sum = 0;
	__u16 *w = (void *)hdr;
	for (int i = 0; i < 10; i++)
		sum += w[i];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	o4->check = ~sum;
#endif
#if MODE == MODE_GUE
	struct udphdr *udp = (void *)tun;
	udp->source = bpf_htons(0xc000 | (bpf_get_hash_recalc(skb) & 0x3fff));
	udp->dest = bpf_htons(GUE_PORT);
	udp->len = bpf_htons(inner_len + 8);
#elif MODE == MODE_GRE
	((__be16 *)tun)[1] = inner6 ? bpf_htons(ETH_P_IPV6) : bpf_htons(ETH_P_IP);
#endif
	if (bpf_skb_adjust_room(skb, HDR_LEN, BPF_ADJ_ROOM_MAC, ENCAP_L3 | ENCAP_L4))
		return TC_ACT_SHOT;
	if (bpf_skb_store_bytes(skb, sizeof(struct ethhdr), hdr, HDR_LEN, 0))
		return TC_ACT_SHOT;
	bump(0);
	return bpf_redirect_neigh(skb->ifindex, NULL, 0, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

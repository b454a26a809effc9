// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * l4fleet node: Maglev forwarding at tc ingress (clsact, direct action) on the node's interface, and optionally
 * in front of it an XDP fast path (node-xdp.h) that forwards what it can and hands everything else to this one.
 *
 * An untagged or priority-tagged packet (VLAN id 0; l4f_node: VLANs) addressed to this host (PACKET_HOST) whose
 * destination is a VIP address (headers read in place):
 *   1. VIP lookup by (address, port, protocol), first, for TCP and UDP; a packet to a VIP address with no VIP
 *      on its port or protocol is dropped and counted. A VIP with source ranges (sourceRanges) drops and counts
 *      a packet from any other source here, before its own counter and before step 2 (node-core.h
 *      source_admitted); ICMP errors about its flows (below) are not filtered.
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
 *      UDP header; source port from the flow hash so ECMP among the backends spreads flows; checksum 0; a
 *      packet second chance tags is variant 0: a GUE header and private data naming the previous owner,
 *      12 bytes more over IPv4, 24 over IPv6: docs/design/0011-second-chance.md).
 *      The kernel routes the outer packet (bpf_redirect_neigh: FIB lookup and neighbour resolution).
 * ICMP "fragmentation needed" (IPv4 type 3 code 4) and "packet too big" (ICMPv6 type 2) to a VIP address are
 * about a backend's reply (source = the VIP): the flow is the embedded header reversed, and the ICMP goes to
 * that flow's backend, so path MTU discovery works through the fleet (RFC 1191, RFC 8201).
 * An echo request (ping: ICMP type 8, ICMPv6 type 128) to a VIP address is answered by the node that receives it,
 * from the VIP (echo_reply): the reply is the request turned around, out of the interface it came in on.
 * A packet that would exceed the MTU once encapsulated is dropped and counted (L4F_DROP_TOO_BIG): backends
 * advertise an MSS that leaves room for the header, a tagged one's included (docs/design/0007-bpf-dataplane.md).
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

#include "node-core.h"

static __always_inline int drop(struct __sk_buff *skb, __u32 reason)
{
	count(&l4f_stats, reason, skb->len);
	return TC_ACT_SHOT;
}

/* Encapsulates (ipip, gre, gue) toward `b` and hands the packet to the kernel's routing. `p`: see previous_owner. */
static __always_inline int encapsulate(struct __sk_buff *skb, const struct l4f_vip *vip, const struct l4f_backend *b,
				       const struct l4f_backend *p, __u32 hash, int v6, __u8 tos)
{
	__u32 zero = 0;
	struct l4f_config *cfg = bpf_map_lookup_elem(&l4f_config, &zero);
	if (!cfg || !(cfg->flags & (v6 ? 2 : 1)))
		return drop(skb, L4F_DROP_NO_SOURCE);
	__u32 olen = outer_len(vip, p, v6);
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
	/* adjust_room has zeroed the room it made (bpf_skb_generic_push): only the non-zero fields are stored (issue
	 * 14: the cost of a first packet). */
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	if (outer_header(data + ETH_HLEN, end, cfg, vip, b, p, hash, v6, tos, skb->len - ETH_HLEN, 1))
		return drop(skb, L4F_DROP_ENCAP_FAILED);
	if (p)
		count(&l4f_stats, L4F_SC_TAGGED, skb->len);
	return bpf_redirect_neigh(skb->ifindex, NULL, 0, 0);
}

static __always_inline int forward(struct __sk_buff *skb, const struct l4f_vip *vip, const struct l4f_pick *k, int v6,
				   __u8 tos)
{
	const struct l4f_backend *b = k->b;
	count(&l4f_backend_stats, k->id, skb->len);
	if (vip->fwd != L4F_FWD_L2)
		return encapsulate(skb, vip, b, previous_owner(vip, k->id, k->prev, v6), k->hash, v6, tos);
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

/*
 * An ICMP error (`remember` 0: a constant at each call, so the flow path compiles without this) counts as forwarded
 * only once forward() sent it on: one with no live backend, or dropped by forward, is counted as that drop alone.
 */
static __always_inline int forwarded(int remember, int verdict, __u32 len)
{
	if (!remember && verdict != TC_ACT_SHOT)
		count(&l4f_stats, L4F_ICMP_FORWARDED, len);
	return verdict;
}

/* Picks the backend of an IPv4 flow (remembered, else the table) and forwards. `remember`: 0 for ICMP errors. */
static __always_inline int serve4(struct __sk_buff *skb, const struct l4f_vip *vip, struct l4f_flow4 *f,
				  int remember, int syn, __u8 tos)
{
	__u32 hash = flow_hash4(f->saddr, f->sport, f->daddr, f->dport, vip->hash, vip->seed);
	struct l4f_pick k;
	if (pick(&l4f_flows4, f, 0, vip, hash, f->proto, remember, syn, &k))
		return drop(skb, L4F_DROP_NO_BACKEND);
	__u32 len = skb->len; /* before the outer header: what the ICMP error counted as before */
	return forwarded(remember, forward(skb, vip, &k, 0, tos), len);
}

static __always_inline int serve6(struct __sk_buff *skb, const struct l4f_vip *vip, struct l4f_flow6 *f,
				  int remember, int syn, __u8 tos)
{
	__u32 hash = flow_hash6(f, vip->hash, vip->seed);
	struct l4f_pick k;
	if (pick(&l4f_flows6, f, 1, vip, hash, f->proto, remember, syn, &k))
		return drop(skb, L4F_DROP_NO_BACKEND);
	__u32 len = skb->len;
	return forwarded(remember, forward(skb, vip, &k, 1, tos), len);
}

/*
 * Answers an echo request to a VIP address (RFC 792; RFC 4443 §4.1-4.2) as Katran does, from the node ECMP handed
 * it to: `ping VIP` then says that the address is announced and that a node holding it is reached, which is what an
 * operator asks of it (an F5 virtual address answers too). The request is turned around in place: MACs and IP
 * addresses swapped, TTL / hop limit 64, type echo reply; identifier, sequence and data stay, as the RFCs require.
 * Swapping the addresses leaves every checksum as it was (a one's complement sum does not depend on the order of
 * its words, and ICMPv6's pseudo-header holds both), so only the TTL word and the type word are adjusted. Not
 * filtered by sourceRanges (they choose clients of a port); an echo request in fragments is dropped as any
 * fragment to a VIP address is (L4F_DROP_FRAGMENT). `off`: the ICMP header's offset; `type` and `code` as read.
 */
static __always_inline int echo_reply(struct __sk_buff *skb, __u32 off, __u8 type, __u8 code, int v6)
{
	__u8 macs[12], swapped[12];
	__u8 addrs[32], turned[32];
	__u32 alen = v6 ? 16 : 4;
	__u32 aoff = ETH_HLEN + (v6 ? 8 : 12);
	if (bpf_skb_load_bytes(skb, 0, macs, 12) || bpf_skb_load_bytes(skb, aoff, addrs, v6 ? 32 : 8))
		return drop(skb, L4F_DROP_PORT);
	__builtin_memcpy(swapped, macs + 6, 6);
	__builtin_memcpy(swapped + 6, macs, 6);
	if (v6) {
		__builtin_memcpy(turned, addrs + 16, 16);
		__builtin_memcpy(turned + 16, addrs, 16);
	} else {
		__builtin_memcpy(turned, addrs + 4, 4);
		__builtin_memcpy(turned + 4, addrs, 4);
	}
	__u8 hops = 64;
	__u8 reply = v6 ? 129 : 0;
	__u16 old_type = bpf_htons(((__u16)type << 8) | code), new_type = bpf_htons(((__u16)reply << 8) | code);
	if (bpf_skb_store_bytes(skb, 0, swapped, 12, 0) || bpf_skb_store_bytes(skb, aoff, turned, 2 * alen, 0))
		return drop(skb, L4F_DROP_ENCAP_FAILED);
	if (v6) {
		if (bpf_skb_store_bytes(skb, ETH_HLEN + 7, &hops, 1, 0))
			return drop(skb, L4F_DROP_ENCAP_FAILED);
	} else {
		__u8 ttl_proto[2];
		if (bpf_skb_load_bytes(skb, ETH_HLEN + 8, ttl_proto, 2))
			return drop(skb, L4F_DROP_ENCAP_FAILED);
		__u16 old_word = *(__u16 *)ttl_proto;
		ttl_proto[0] = hops;
		if (bpf_l3_csum_replace(skb, ETH_HLEN + 10, old_word, *(__u16 *)ttl_proto, 2) ||
		    bpf_skb_store_bytes(skb, ETH_HLEN + 8, ttl_proto, 1, 0))
			return drop(skb, L4F_DROP_ENCAP_FAILED);
	}
	if (bpf_l4_csum_replace(skb, off + 2, old_type, new_type, 2) || bpf_skb_store_bytes(skb, off, &reply, 1, 0))
		return drop(skb, L4F_DROP_ENCAP_FAILED);
	count(&l4f_stats, L4F_ICMP_ECHO, skb->len);
	return bpf_redirect(skb->ifindex, 0);
}

static __always_inline int icmp4(struct __sk_buff *skb, __u32 off)
{
	__u8 icmp[2];
	if (bpf_skb_load_bytes(skb, off, icmp, 2))
		return drop(skb, L4F_DROP_PORT);
	if (icmp[0] == 8)
		return echo_reply(skb, off, icmp[0], icmp[1], 0);
	if (icmp[0] != 3 || icmp[1] != 4)
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
	return serve4(skb, vip, &f, 0, 0, 0);
}

static __always_inline int icmp6(struct __sk_buff *skb, __u32 off)
{
	__u8 icmp[2];
	if (bpf_skb_load_bytes(skb, off, icmp, 2))
		return drop(skb, L4F_DROP_PORT);
	if (icmp[0] == 128)
		return echo_reply(skb, off, icmp[0], icmp[1], 1);
	if (icmp[0] != 2)
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
	return serve6(skb, vip, &f, 0, 0, 0);
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
 * The IP length field (IPv4 total length / IPv6 payload length + 40) as the kernel reads it: 0 in a GRO'd BIG TCP
 * packet means the frame's length (iph_totlen, ipv6_payload_len).
 */
static __always_inline __u32 ip_len(struct __sk_buff *skb, __u32 field)
{
	return field == 0 && skb->gso_size ? skb->len - ETH_HLEN : field;
}

/*
 * Whether the ports at `l4` (bytes into the IP packet) lie inside the packet its length field describes, and that
 * packet inside the frame: else the 4 bytes read as ports are Ethernet padding or a trailer, and the packet is not
 * TCP or UDP to a port (nftables: nft_set_pktinfo_ipv4_ingress; the IP layer drops a truncated packet).
 */
static __always_inline int ports_inside(struct __sk_buff *skb, __u32 len, __u32 l4)
{
	return len >= l4 + 4 && len <= skb->len - ETH_HLEN;
}

/*
 * A TCP or UDP packet is looked up as a VIP (address, port, protocol) first: one hash lookup for the traffic this
 * node exists for. Anything else, or no such VIP, is ours only if its destination is a VIP address (dropped and
 * counted, or an ICMP error about a VIP flow); the node's own traffic passes. A packet whose length field leaves
 * no room for its ports, or runs past the frame, is "anything else" (ports_inside): to a VIP address, L4F_DROP_PORT.
 */
static __always_inline int ingress4(struct __sk_buff *skb)
{
	pull_headers(skb, ETH_HLEN + 60 + 14); /* up to the TCP flags */
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + ETH_HLEN;
	if ((void *)(ip + 1) > end || ip->ihl < 5)
		return TC_ACT_OK;
	__u32 daddr = ip->daddr;
	__u8 proto = ip->protocol;
	int fragment = (ip->frag_off & bpf_htons(0x3fff)) != 0;
	__u32 l4 = ETH_HLEN + ip->ihl * 4;
	if (!fragment && (proto == IPPROTO_TCP || proto == IPPROTO_UDP) &&
	    ports_inside(skb, ip_len(skb, bpf_ntohs(ip->tot_len)), ip->ihl * 4)) {
		__u16 *ports = (void *)ip + ip->ihl * 4;
		if ((void *)(ports + 2) <= end) {
			struct l4f_vip_key vk = {.port = ports[1], .proto = proto, .family = L4F_FAMILY_V4};
			__builtin_memcpy(vk.addr, &daddr, 4);
			struct l4f_vip *vip = bpf_map_lookup_elem(&l4f_vips, &vk);
			if (vip) {
				/* sourceRanges first: not counted as the VIP's, and before the flow LRU (see source_admitted) */
				if ((vip->flags & L4F_VIP_SOURCE_RANGES) && !source_admitted(vip, &ip->saddr, 0))
					return drop(skb, L4F_DROP_SOURCE);
				count(&l4f_vip_stats, vip->id, skb->len);
				struct l4f_flow4 f = {.saddr = ip->saddr, .daddr = daddr, .sport = ports[0],
						      .dport = ports[1], .proto = proto};
				return serve4(skb, vip, &f, 1, proto == IPPROTO_TCP && tcp_syn(ports, end), ip->tos);
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
	pull_headers(skb, ETH_HLEN + 40 + 14); /* up to the TCP flags */
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ipv6hdr *ip = data + ETH_HLEN;
	if ((void *)(ip + 1) > end)
		return TC_ACT_OK;
	__u8 next = ip->nexthdr;
	if ((next == IPPROTO_TCP || next == IPPROTO_UDP) &&
	    ports_inside(skb, ip_len(skb, ip->payload_len ? bpf_ntohs(ip->payload_len) + 40 : 0), 40)) {
		__u16 *ports = (void *)(ip + 1);
		if ((void *)(ports + 2) <= end) {
			struct l4f_vip_key vk = {.port = ports[1], .proto = next, .family = L4F_FAMILY_V6};
			__builtin_memcpy(vk.addr, &ip->daddr, 16);
			struct l4f_vip *vip = bpf_map_lookup_elem(&l4f_vips, &vk);
			if (vip) {
				if ((vip->flags & L4F_VIP_SOURCE_RANGES) && !source_admitted(vip, &ip->saddr, 1))
					return drop(skb, L4F_DROP_SOURCE);
				count(&l4f_vip_stats, vip->id, skb->len);
				struct l4f_flow6 f = {.sport = ports[0], .dport = ports[1], .proto = next};
				__builtin_memcpy(f.saddr, &ip->saddr, 16);
				__builtin_memcpy(f.daddr, &ip->daddr, 16);
				__u8 tc = (__u8)((bpf_ntohl(*(__u32 *)ip) >> 20) & 0xff);
				return serve6(skb, vip, &f, 1, next == IPPROTO_TCP && tcp_syn(ports, end), tc);
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
	/*
	 * An 802.1Q / 802.1ad tagged frame: the kernel has moved its tag into the skb before tc (skb_vlan_untag, or the
	 * NIC's rx VLAN offload), and one with a VLAN id belongs to that VLAN's device, whose stack takes it after this
	 * hook. Forwarded here it would leave this interface still tagged (bpf_redirect keeps the tag), an encapsulated
	 * one toward a next hop found on the untagged network. Not served: the configured interface serves untagged
	 * frames; a VLAN device configured as the interface sees its frames untagged (docs/design/0007, "Packet path").
	 * VLAN id 0 is an 802.1p priority tag (switches and DCB setups add it): the kernel delivers that frame to this
	 * interface as an untagged one (__netif_receive_skb_core clears the tag), and nftables serves it, so it is
	 * served here too. Its tag is kept, as nftables' fwd keeps it: a backend sees the same frame from either
	 * driver, its priority included (a receiver treats a priority-tagged frame as untagged).
	 */
	if (skb->vlan_present && (skb->vlan_tci & 0x0fff) != 0)
		return TC_ACT_OK;
	if (skb->protocol == bpf_htons(ETH_P_IP))
		return ingress4(skb);
	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		return ingress6(skb);
	return TC_ACT_OK;
}

#include "node-xdp.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The XDP fast path (the `xdp: native` option), included by node.bpf.c so that it shares the tc program's maps.
 *
 * It runs in the NIC driver before an skb exists and forwards only what it can finish alone: a TCP or UDP packet
 * to a VIP, sent to this host's MAC, without IPv4 options, IPv6 extension headers or fragments, whose flow has a
 * live backend, and whose next hop the kernel's FIB already knows out of the same interface (bpf_fib_lookup:
 * route and neighbour entry, and the MTU with the outer header). That packet leaves by XDP_TX, rewritten in
 * place: Ethernet addresses for `l2`, the outer header pushed in front (bpf_xdp_adjust_head) for ipip, gre and gue.
 * A packet whose IP length field leaves no room for the ports or runs past the frame is not TCP or UDP to a port
 * (the 4 bytes are padding or a trailer): passed, and tc treats it as such. Everything else gets XDP_PASS
 * untouched, and the tc program does all it does today: an unresolved neighbour (bpf_redirect_neigh asks ARP / ND),
 * a packet too big to encapsulate (dropped and counted), ICMP errors about a VIP flow, drops by reason, the node's
 * own traffic. So tc stays the complete data plane, and XDP a shortcut in
 * front of it that counts each packet it sends itself (L4F_XDP_TX) and no other; the one exception is a source
 * outside a VIP's source ranges, which XDP drops and counts itself (L4F_DROP_SOURCE, as tc would).
 *
 * Both pick the same backend (node-core.h: one hash, one pick, one outer header). A packet XDP passes is picked
 * again by tc, which finds the flow XDP may have remembered: the same backend.
 *
 * bpf_fib_lookup refuses (BPF_FIB_LKUP_RET_FWD_DISABLED) on an interface without forwarding enabled
 * (net.ipv4.conf.IF.forwarding, net.ipv6.conf.IF.forwarding): the fast path is then idle for that family and tc
 * forwards everything (docs/design/0007, "XDP").
 */
#ifndef L4F_NODE_XDP_H
#define L4F_NODE_XDP_H

#define AF_INET_ 2
#define AF_INET6_ 10

static __always_inline int mac_eq(const __u8 *a, const __u8 *b)
{
	return *(const __u32 *)a == *(const __u32 *)b && *(const __u16 *)(a + 4) == *(const __u16 *)(b + 4);
}

/*
 * Forwards the packet of flow `k` (the IP header at data + ETH_HLEN, `len` bytes of frame) by XDP_TX, or passes
 * it to tc unchanged. `fib` holds the flow's addresses and ports (for a multipath route's hash).
 */
static __always_inline int xdp_forward(struct xdp_md *ctx, const struct l4f_vip *vip, const struct l4f_pick *k,
				       struct bpf_fib_lookup *fib, int v6, __u8 tos)
{
	const struct l4f_backend *b = k->b;
	__u32 len = (__u32)(ctx->data_end - ctx->data);
	const struct l4f_backend *p = NULL;
	struct l4f_config *cfg = NULL;
	__u32 olen = 0;
	if (vip->fwd != L4F_FWD_L2) {
		__u32 zero = 0;
		cfg = bpf_map_lookup_elem(&l4f_config, &zero);
		if (!cfg || !(cfg->flags & (v6 ? 2 : 1)))
			return XDP_PASS; /* tc drops and counts it (no-source) */
		p = previous_owner(vip, k->id, k->prev, v6);
		olen = outer_len(vip, p, v6);
		/* the outer packet: node -> backend */
		if (v6) {
			__builtin_memcpy(fib->ipv6_src, cfg->src6, 16);
			__builtin_memcpy(fib->ipv6_dst, b->addr, 16);
		} else {
			fib->ipv4_src = cfg->src4;
			__builtin_memcpy(&fib->ipv4_dst, b->addr, 4);
		}
		fib->l4_protocol = vip->fwd == L4F_FWD_GUE ? IPPROTO_UDP : vip->fwd == L4F_FWD_GRE ? IPPROTO_GRE_
											   : (v6 ? IPPROTO_IPV6_ : IPPROTO_IPIP_);
		fib->sport = 0;
		fib->dport = 0;
	} else if (!(b->flags & L4F_BACKEND_HAS_MAC)) {
		/* l2: the backend is the next hop itself (its neighbour entry), as tc's bpf_redirect_neigh(nh) */
		if (v6)
			__builtin_memcpy(fib->ipv6_dst, b->addr, 16);
		else
			__builtin_memcpy(&fib->ipv4_dst, b->addr, 4);
	}
	if (vip->fwd != L4F_FWD_L2 || !(b->flags & L4F_BACKEND_HAS_MAC)) {
		fib->family = v6 ? AF_INET6_ : AF_INET_;
		fib->ifindex = ctx->ingress_ifindex;
		fib->tot_len = (__u16)(len - ETH_HLEN + olen); /* the MTU check, outer header included */
		int rc = bpf_fib_lookup(ctx, fib, sizeof(*fib), 0);
		/* No route or neighbour yet, too big, forwarding off, or out of another interface: tc decides. */
		if (rc != BPF_FIB_LKUP_RET_SUCCESS || fib->ifindex != ctx->ingress_ifindex)
			return XDP_PASS;
	}
	if (olen && bpf_xdp_adjust_head(ctx, -(int)olen))
		return XDP_PASS; /* no headroom: tc makes room */
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_DROP;
	if (olen) {
		eth->h_proto = bpf_htons(v6 ? ETH_P_IPV6 : ETH_P_IP);
		if (outer_header(data + ETH_HLEN, end, cfg, vip, b, p, k->hash, v6, tos, len - ETH_HLEN + olen, 0)) {
			count(&l4f_stats, L4F_DROP_ENCAP_FAILED, len);
			return XDP_DROP;
		}
	}
	if (vip->fwd == L4F_FWD_L2 && (b->flags & L4F_BACKEND_HAS_MAC)) {
		/* The frame came to this host's MAC: that becomes the source, the backend's the destination. */
		__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
		__builtin_memcpy(eth->h_dest, b->mac, ETH_ALEN);
	} else {
		__builtin_memcpy(eth->h_dest, fib->dmac, ETH_ALEN);
		__builtin_memcpy(eth->h_source, fib->smac, ETH_ALEN);
	}
	count(&l4f_vip_stats, vip->id, len);
	count(&l4f_backend_stats, k->id, len);
	count(&l4f_stats, L4F_XDP_TX, len);
	if (p)
		count(&l4f_stats, L4F_SC_TAGGED, len + olen);
	return XDP_TX;
}

/*
 * A source outside the VIP's ranges: dropped here, counted as tc counts it (L4F_DROP_SOURCE, the frame's bytes).
 * The one drop the fast path makes itself: it needs nothing of the kernel, and dropping before an skb exists is
 * what XDP is cheapest at (a refused client flooding a filtered VIP costs no skb).
 */
static __always_inline int xdp_drop_source(void *data, void *end)
{
	count(&l4f_stats, L4F_DROP_SOURCE, (__u32)(end - data));
	return XDP_DROP;
}

static __always_inline int xdp4(struct xdp_md *ctx, void *data, void *end)
{
	struct iphdr *ip = data + ETH_HLEN;
	if ((void *)(ip + 1) > end || ip->ihl != 5 || (ip->frag_off & bpf_htons(0x3fff)))
		return XDP_PASS;
	__u8 proto = ip->protocol;
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return XDP_PASS;
	__u16 *ports = (void *)(ip + 1);
	if ((void *)(ports + 2) > end)
		return XDP_PASS;
	/* ports outside the packet its length says, or a length past the frame: not L4 (tc: ports_inside) */
	__u32 len = bpf_ntohs(ip->tot_len);
	if (len < 20 + 4 || len > (__u32)(end - data) - ETH_HLEN)
		return XDP_PASS;
	struct l4f_vip_key vk = {.port = ports[1], .proto = proto, .family = L4F_FAMILY_V4};
	__builtin_memcpy(vk.addr, &ip->daddr, 4);
	struct l4f_vip *vip = bpf_map_lookup_elem(&l4f_vips, &vk);
	if (!vip)
		return XDP_PASS;
	if ((vip->flags & L4F_VIP_SOURCE_RANGES) && !source_admitted(vip, &ip->saddr, 0))
		return xdp_drop_source(data, end);
	struct l4f_flow4 f = {.saddr = ip->saddr, .daddr = ip->daddr, .sport = ports[0], .dport = ports[1],
			      .proto = proto};
	__u32 hash = flow_hash4(f.saddr, f.sport, f.daddr, f.dport, vip->hash, vip->seed);
	struct l4f_pick k;
	if (pick(&l4f_flows4, &f, 0, vip, hash, proto, 1, proto == IPPROTO_TCP && tcp_syn(ports, end), &k))
		return XDP_PASS; /* tc drops and counts it (no-backend) */
	struct bpf_fib_lookup fib = {.l4_protocol = proto, .sport = f.sport, .dport = f.dport, .tos = ip->tos,
				     .ipv4_src = f.saddr, .ipv4_dst = f.daddr};
	return xdp_forward(ctx, vip, &k, &fib, 0, ip->tos);
}

static __always_inline int xdp6(struct xdp_md *ctx, void *data, void *end)
{
	struct ipv6hdr *ip = data + ETH_HLEN;
	if ((void *)(ip + 1) > end)
		return XDP_PASS;
	__u8 next = ip->nexthdr;
	if (next != IPPROTO_TCP && next != IPPROTO_UDP)
		return XDP_PASS;
	__u16 *ports = (void *)(ip + 1);
	if ((void *)(ports + 2) > end)
		return XDP_PASS;
	__u32 len = bpf_ntohs(ip->payload_len);
	if (len < 4 || len > (__u32)(end - data) - ETH_HLEN - 40)
		return XDP_PASS;
	struct l4f_vip_key vk = {.port = ports[1], .proto = next, .family = L4F_FAMILY_V6};
	__builtin_memcpy(vk.addr, &ip->daddr, 16);
	struct l4f_vip *vip = bpf_map_lookup_elem(&l4f_vips, &vk);
	if (!vip)
		return XDP_PASS;
	if ((vip->flags & L4F_VIP_SOURCE_RANGES) && !source_admitted(vip, &ip->saddr, 1))
		return xdp_drop_source(data, end);
	struct l4f_flow6 f = {.sport = ports[0], .dport = ports[1], .proto = next};
	__builtin_memcpy(f.saddr, &ip->saddr, 16);
	__builtin_memcpy(f.daddr, &ip->daddr, 16);
	__u32 hash = flow_hash6(&f, vip->hash, vip->seed);
	struct l4f_pick k;
	if (pick(&l4f_flows6, &f, 1, vip, hash, next, 1, next == IPPROTO_TCP && tcp_syn(ports, end), &k))
		return XDP_PASS;
	__u32 word0 = bpf_ntohl(*(__u32 *)ip);
	__u8 tc = (__u8)((word0 >> 20) & 0xff);
	struct bpf_fib_lookup fib = {.l4_protocol = next, .sport = f.sport, .dport = f.dport,
				     .flowinfo = bpf_htonl(word0 & 0x0fffffff)};
	__builtin_memcpy(fib.ipv6_src, f.saddr, 16);
	__builtin_memcpy(fib.ipv6_dst, f.daddr, 16);
	return xdp_forward(ctx, vip, &k, &fib, 1, tc);
}

SEC("xdp")
int l4f_node_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	/* Only frames to this host's MAC (tc: PACKET_HOST): a flooded frame for another host is not ours. */
	__u32 ifindex = ctx->ingress_ifindex;
	struct l4f_iface *ifc = bpf_map_lookup_elem(&l4f_ifaces, &ifindex);
	if (!ifc || !mac_eq(eth->h_dest, ifc->mac))
		return XDP_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IP))
		return xdp4(ctx, data, end);
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return xdp6(ctx, data, end);
	return XDP_PASS;
}

#endif

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The backend's second chance (docs/design/0011-second-chance.md; GLB Director's glb-redirect), included by
 * backend.bpf.c after its maps, counters and `struct outer`: for a GUE packet naming the slot's previous owner,
 * whether this host has a socket for it, and if not, the packet sent on to that owner still encapsulated.
 */
#ifndef L4FB_SECOND_CHANCE_H
#define L4FB_SECOND_CHANCE_H

/*
 * Whether this host has a socket for the inner TCP packet: 1 yes, 0 no, -1 not a question (not TCP, or a SYN:
 * a new connection belongs to the current owner), -2 the headers are not in the linear data (pull, ask again).
 * Established, time-wait and request (SYN_RECV) sockets count; a listener only for the ACK of a valid SYN
 * cookie (bpf_tcp_check_syncookie), as GLB's glb-redirect does.
 */
static __always_inline int tcp_socket(struct __sk_buff *skb, const struct outer *o)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	__u32 off = sizeof(struct ethhdr) + (o->hdr_len & 0xff);
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;
	int found;

	if (o->inner_v6) {
		struct ipv6hdr *ip6 = data + off;
		struct tcphdr *th = (void *)(ip6 + 1);

		if ((void *)(ip6 + 1) > end)
			return -2;
		if (ip6->nexthdr != IPPROTO_TCP)
			return -1;
		if ((void *)(th + 1) > end)
			return -2;
		if (th->syn && !th->ack)
			return -1;
		__builtin_memcpy(t.ipv6.saddr, &ip6->saddr, 16);
		__builtin_memcpy(t.ipv6.daddr, &ip6->daddr, 16);
		t.ipv6.sport = th->source;
		t.ipv6.dport = th->dest;
		sk = bpf_skc_lookup_tcp(skb, &t, sizeof(t.ipv6), BPF_F_CURRENT_NETNS, 0);
		if (!sk)
			return 0;
		found = sk->state != BPF_TCP_LISTEN;
		if (!found)
			found = bpf_tcp_check_syncookie(sk, ip6, sizeof(*ip6), th, sizeof(*th)) == 0;
		bpf_sk_release(sk);
		return found;
	}
	struct iphdr *ip = data + off;
	struct tcphdr *th = (void *)(ip + 1);

	if ((void *)(ip + 1) > end)
		return -2;
	/* IP options (ihl > 5) are not followed: such a packet is decapsulated here, as without second chance. */
	if (ip->protocol != IPPROTO_TCP || ip->ihl != 5)
		return -1;
	if ((void *)(th + 1) > end)
		return -2;
	if (th->syn && !th->ack)
		return -1;
	t.ipv4.saddr = ip->saddr;
	t.ipv4.daddr = ip->daddr;
	t.ipv4.sport = th->source;
	t.ipv4.dport = th->dest;
	sk = bpf_skc_lookup_tcp(skb, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return 0;
	found = sk->state != BPF_TCP_LISTEN;
	if (!found)
		found = bpf_tcp_check_syncookie(sk, ip, sizeof(*ip), th, sizeof(*th)) == 0;
	bpf_sk_release(sk);
	return found;
}

static __always_inline __u16 csum_fold(__u32 csum)
{
	csum = (csum & 0xffff) + (csum >> 16);
	csum = (csum & 0xffff) + (csum >> 16);
	return (__u16)~csum;
}

/*
 * Sends the packet, still encapsulated, to the previous owner named in its GUE private data: outer source =
 * this host's address (where the node sent it), destination = the hop, TTL 64, hop index = used. Written with
 * BPF_F_RECOMPUTE_CSUM so a CHECKSUM_COMPLETE skb stays right; then the kernel routes it (FIB + neighbour).
 */
static __always_inline int forward_previous(struct __sk_buff *skb, const struct outer *o)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	__u8 used = 1;
	__u32 at;

	if (o->outer_v6) {
		struct ipv6hdr *ip6 = data + sizeof(struct ethhdr);
		__u8 *hop = (void *)(ip6 + 1) + UDP_HDR_LEN + sizeof(struct l4f_gue_sc);
		struct ipv6hdr n;

		if ((void *)(hop + 16) > end)
			return drop(skb, CNT_SC_FAILED);
		n = *ip6;
		n.saddr = ip6->daddr;
		__builtin_memcpy(&n.daddr, hop, 16);
		n.hop_limit = 64;
		if (bpf_skb_store_bytes(skb, sizeof(struct ethhdr), &n, sizeof(n), BPF_F_RECOMPUTE_CSUM))
			return drop(skb, CNT_SC_FAILED);
		at = sizeof(struct ethhdr) + sizeof(n) + UDP_HDR_LEN + __builtin_offsetof(struct l4f_gue_sc, hop_index);
	} else {
		struct iphdr *ip = data + sizeof(struct ethhdr);
		__u8 *hop = (void *)(ip + 1) + UDP_HDR_LEN + sizeof(struct l4f_gue_sc);
		struct iphdr n;
		__u32 sum = 0;

		if ((void *)(hop + 4) > end || ip->ihl != 5)
			return drop(skb, CNT_SC_FAILED);
		n = *ip;
		n.saddr = ip->daddr;
		__builtin_memcpy(&n.daddr, hop, 4);
		n.ttl = 64;
		n.check = 0;
		__u16 *w = (__u16 *)&n;
#pragma unroll
		for (int i = 0; i < 10; i++)
			sum += w[i];
		n.check = csum_fold(sum);
		if (bpf_skb_store_bytes(skb, sizeof(struct ethhdr), &n, sizeof(n), BPF_F_RECOMPUTE_CSUM))
			return drop(skb, CNT_SC_FAILED);
		at = sizeof(struct ethhdr) + sizeof(n) + UDP_HDR_LEN + __builtin_offsetof(struct l4f_gue_sc, hop_index);
	}
	if (bpf_skb_store_bytes(skb, at, &used, 1, BPF_F_RECOMPUTE_CSUM))
		return drop(skb, CNT_SC_FAILED);
	count(CNT_SC_FORWARDED, skb->len);
	return bpf_redirect_neigh(skb->ifindex, NULL, 0, 0);
}

/* A packet naming a previous owner: forwards it there (a verdict) or returns -1 to decapsulate it here. */
static __always_inline int second_chance(struct __sk_buff *skb, const struct outer *o)
{
	int here = tcp_socket(skb, o);

	if (here == -2) {
		/* Capped at the packet: asking for more fails, and a bare ACK is shorter than the largest headers. */
		__u32 need = sizeof(struct ethhdr) + (o->hdr_len & 0xff) + 60;

		if (bpf_skb_pull_data(skb, need < skb->len ? need : skb->len))
			return -1;
		here = tcp_socket(skb, o);
	}
	if (here < 0)
		return -1;
	if (o->sc_used) {
		count(here ? CNT_SC_RECEIVED : CNT_SC_MISS, skb->len);
		return -1;
	}
	if (here) {
		count(CNT_SC_LOCAL, skb->len);
		return -1;
	}
	return forward_previous(skb, o);
}

#endif /* L4FB_SECOND_CHANCE_H */

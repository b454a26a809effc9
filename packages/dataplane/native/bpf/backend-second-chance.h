/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The backend's second chance (docs/design/0011-second-chance.md; GLB Director's glb-redirect), included by
 * backend.bpf.c after its maps, counters and `struct outer`: for a GUE packet naming the slot's previous owner,
 * whether this host has a socket for it, and if not, the packet sent on to that owner still encapsulated.
 */
#ifndef L4FB_SECOND_CHANCE_H
#define L4FB_SECOND_CHANCE_H

/* tcp_socket's answers besides 1 (a socket here) and 0 (none). */
enum {
	SC_NOT_ASKED = -1, /* not TCP (nor an ICMP error about TCP), or IP options: decapsulated here, uncounted */
	SC_PULL = -2,      /* the headers are not in the linear data: pull, ask again (still so: too short) */
	SC_SYN = -3,       /* a SYN: a new connection is the current owner's, decapsulated here (local) */
};

#define ICMP_HDR_LEN 8
/* What tcp_socket reads behind the tunnel headers, at most: an IPv4 header with options (60) and an ICMP error
 * quoting an IPv6 header (8 + 40) and the ports (4). A bare ACK is shorter: the pull is capped at the packet. */
#define SC_HEADERS_MAX (60 + ICMP_HDR_LEN + 40 + 4)

/* A socket for `t` here: 1 yes, 0 no. A listener is no answer (an ICMP error is about a segment the socket sent). */
static __always_inline int socket_for(struct __sk_buff *skb, struct bpf_sock_tuple *t, __u32 len)
{
	struct bpf_sock *sk = bpf_skc_lookup_tcp(skb, t, len, BPF_F_CURRENT_NETNS, 0);
	int found;

	if (!sk)
		return 0;
	found = sk->state != BPF_TCP_LISTEN;
	bpf_sk_release(sk);
	return found;
}

/*
 * Whether this host has a socket for the inner TCP packet: 1 yes, 0 no, else SC_*. Established, time-wait and
 * request (SYN_RECV) sockets count; a listener only for the ACK of a valid SYN cookie (bpf_tcp_check_syncookie), as
 * GLB's glb-redirect does.
 * An ICMP "fragmentation needed" (IPv4 type 3 code 4) or "packet too big" (ICMPv6 type 2) is about a segment the
 * flow's backend sent (the node picked the flow from the quoted header reversed: node.bpf.c icmp4/icmp6), so it
 * belongs where that segment's socket is: the quoted 4-tuple reversed is asked, and the answer is a segment's. Else
 * a rescued flow's path MTU discovery would end at the current owner, whose stack has no socket and drops it, and the
 * previous owner, which sends the segments, would never learn the MTU (RFC 1191, RFC 8201).
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
			return SC_PULL;
		if (ip6->nexthdr == IPPROTO_ICMPV6) {
			__u8 *icmp = (void *)(ip6 + 1);
			struct ipv6hdr *q = (void *)(icmp + ICMP_HDR_LEN);
			__be16 *ports = (void *)(q + 1);

			if ((void *)(icmp + ICMP_HDR_LEN) > end)
				return SC_PULL;
			if (icmp[0] != 2)
				return SC_NOT_ASKED;
			if ((void *)(ports + 2) > end)
				return SC_PULL;
			if (q->nexthdr != IPPROTO_TCP)
				return SC_NOT_ASKED;
			__builtin_memcpy(t.ipv6.saddr, &q->daddr, 16);
			__builtin_memcpy(t.ipv6.daddr, &q->saddr, 16);
			t.ipv6.sport = ports[1];
			t.ipv6.dport = ports[0];
			return socket_for(skb, &t, sizeof(t.ipv6));
		}
		if (ip6->nexthdr != IPPROTO_TCP)
			return SC_NOT_ASKED;
		if ((void *)(th + 1) > end)
			return SC_PULL;
		if (th->syn && !th->ack)
			return SC_SYN;
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
		return SC_PULL;
	/* IP options (ihl > 5) are not followed: such a packet is decapsulated here, as without second chance. So is an
	 * ICMP error quoting a header with options (the backends' replies have none). */
	if (ip->ihl != 5)
		return SC_NOT_ASKED;
	if (ip->protocol == IPPROTO_ICMP) {
		__u8 *icmp = (void *)(ip + 1);
		struct iphdr *q = (void *)(icmp + ICMP_HDR_LEN);
		__be16 *ports = (void *)(q + 1);

		if ((void *)(icmp + ICMP_HDR_LEN) > end)
			return SC_PULL;
		if (icmp[0] != 3 || icmp[1] != 4)
			return SC_NOT_ASKED;
		if ((void *)(ports + 2) > end)
			return SC_PULL;
		if (q->protocol != IPPROTO_TCP || q->ihl != 5)
			return SC_NOT_ASKED;
		t.ipv4.saddr = q->daddr;
		t.ipv4.daddr = q->saddr;
		t.ipv4.sport = ports[1];
		t.ipv4.dport = ports[0];
		return socket_for(skb, &t, sizeof(t.ipv4));
	}
	if (ip->protocol != IPPROTO_TCP)
		return SC_NOT_ASKED;
	if ((void *)(th + 1) > end)
		return SC_PULL;
	if (th->syn && !th->ack)
		return SC_SYN;
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

/* A packet naming a previous owner: forwards it there or drops it (a verdict), or returns -1 to decapsulate it here. */
static __always_inline int second_chance(struct __sk_buff *skb, const struct outer *o)
{
	/* The nodes write no IPv4 options (outer_header: IHL 5); forward_previous rewrites a 20-byte header and finds
	 * the hop right after it, so it could not forward such a packet either. */
	if (!o->outer_v6 && o->l3_len != sizeof(struct iphdr))
		return drop(skb, CNT_MALFORMED);
	int here = tcp_socket(skb, o);

	if (here == SC_PULL) {
		__u32 need = sizeof(struct ethhdr) + (o->hdr_len & 0xff) + SC_HEADERS_MAX;

		/* Not decapsulated unasked: this host's stack would reset a flow whose socket may be at the previous
		 * owner. Dropped (bpf_skb_pull_data fails only without memory): TCP sends it again. */
		if (bpf_skb_pull_data(skb, need < skb->len ? need : skb->len))
			return drop(skb, CNT_SC_FAILED);
		here = tcp_socket(skb, o);
	}
	if (here == SC_SYN) {
		count(CNT_SC_LOCAL, skb->len);
		return -1;
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

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The per-packet bench's sender side (tc egress on the client's interface): leaves NIC_HEADROOM bytes in front of
 * each frame's MAC header, as a NIC driver's receive buffer has them (NET_SKB_PAD: 64 on x86). A datagram sent
 * by a local socket over a veth has 2 (LL_RESERVED_SPACE 16, minus the 14-byte MAC header), so on the node every
 * encapsulating bpf_skb_adjust_room must reallocate the head first (skb_cow -> pskb_expand_head); a frame from a
 * NIC would not. Grow by NIC_HEADROOM after the MAC header (this reallocates, here, on the sender), then shrink by
 * the same: the frame is unchanged and the room stays in front of it.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#define NIC_HEADROOM 64

SEC("tc")
int nic_headroom(struct __sk_buff *skb)
{
	if (bpf_skb_adjust_room(skb, NIC_HEADROOM, BPF_ADJ_ROOM_MAC, 0) == 0)
		bpf_skb_adjust_room(skb, -NIC_HEADROOM, BPF_ADJ_ROOM_MAC, 0);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";

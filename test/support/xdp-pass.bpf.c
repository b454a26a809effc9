// SPDX-License-Identifier: GPL-2.0-only
/*
 * Test only: XDP_PASS on the router's end of the node's veth. A veth delivers the frames its peer sends by XDP_TX
 * only when it runs an XDP program itself (drivers/net/veth.c, veth_xdp_flush: with GRO alone they wait in the
 * ring until an skb wakes NAPI). A NIC needs nothing of the kind.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";

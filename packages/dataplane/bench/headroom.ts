/**
 * NIC-like headroom for the per-packet bench's floods, without reallocating anything per packet.
 *
 * A datagram a local socket sends over a veth is allocated with LL_RESERVED_SPACE(dev) in front of it: 16 bytes,
 * 2 of them left once the 14-byte MAC header is pushed. So on the node every encapsulating
 * `bpf_skb_adjust_room` must reallocate the head first (skb_cow -> pskb_expand_head); a frame a NIC received
 * has NET_SKB_PAD (64 on x86) in front of it and would not be reallocated.
 *
 * The knob: a veth's needed_headroom is the larger of what its two ends were asked for (veth_set_rx_headroom),
 * and a bridge asks each port for the largest needed_headroom among its ports (br_if.c update_headroom). The
 * router's client-side veth (c0) sits alone in a bridge (brc); enslaving a vxlan device that is never brought
 * up (VXLAN_HEADROOM, 50 bytes) raises c0's and so the client's eth0 needed_headroom to 50. The client's sockets
 * then allocate 80 bytes in front of each datagram, 66 of them left in front of the MAC header: measured with a
 * tc program comparing skb->data around `bpf_skb_adjust_room` (66 bytes grow in place, 67 reallocate). Nothing
 * is copied on the way (the router's forward keeps the room), so new-flow floods are measured as cleanly as
 * known-flow ones. Releasing the vxlan device from the bridge puts the room back to 2.
 */
import type { NetnsHost } from '../../../test/support/netns.js';

/** Bytes in front of the MAC header of the client's frames with NIC-like headroom (a NIC's NET_SKB_PAD: 64). */
export const NIC_HEADROOM_BYTES = 66;
/** The router's bridge over its client-side veth, and the idle vxlan device that raises its headroom. */
export const CLIENT_BRIDGE = 'brc';
const HEADROOM_DEVICE = 'vxh';

/**
 * Puts the router's client-side veth `port` alone in a bridge (the router's client-side addresses go on the
 * bridge) and creates the idle vxlan device that nicHeadroom enslaves. `local`: any router address (vxlan needs
 * one to be created; the device is never up, so it sends nothing).
 */
export async function clientBridge(router: NetnsHost, port: string, local: string): Promise<void> {
  // The bridge keeps the port's MAC address: left to itself it takes the lowest among its ports, and a change
  // when the vxlan device joins would strand the client's neighbour entry for the router.
  const mac = (await router.run(['cat', `/sys/class/net/${port}/address`])).stdout.trim();
  await router.run(['ip', 'link', 'add', CLIENT_BRIDGE, 'address', mac, 'type', 'bridge', 'forward_delay', '0']);
  await router.run(['ip', 'link', 'set', CLIENT_BRIDGE, 'type', 'bridge', 'stp_state', '0']);
  await router.run(['ip', 'link', 'set', port, 'master', CLIENT_BRIDGE]);
  await router.run(['ip', 'link', 'set', CLIENT_BRIDGE, 'up']);
  await router.run([
    'ip',
    'link',
    'add',
    HEADROOM_DEVICE,
    'type',
    'vxlan',
    'id',
    '1',
    'dstport',
    '4789',
    'local',
    local,
  ]);
}

/** NIC-like room in front of the client's frames (on), or a veth's 2 bytes (off). */
export async function nicHeadroom(router: NetnsHost, on: boolean): Promise<void> {
  await router.run(['ip', 'link', 'set', HEADROOM_DEVICE, ...(on ? ['master', CLIENT_BRIDGE] : ['nomaster'])]);
}

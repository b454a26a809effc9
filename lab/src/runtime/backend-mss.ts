/**
 * The MSS an encapsulated lab backend advertises (its default routes' `advmss`), as docs/backend-host.md "MTU and MSS"
 * tells a real backend's operator. A bpf node drops a packet that no longer fits its interface once encapsulated
 * (`too-big`, no ICMP: design note 0007 "MTU"); GSO-merged segments pass (the kernel shrinks them), but a full-size
 * lone segment (an upload's, a retransmission) would not. The lab's links keep the veth default MTU, so the backend
 * keeps the client's segments small instead: the client sizes them by the MSS in the backend's SYN-ACK. Pure.
 */
import type { LabForwarding } from '../topology/data-path.js';

/** Every lab link's MTU: the veth default (netns-plan.ts sets none; Docker's veths are the same). */
export const LAB_LINK_MTU_BYTES = 1_500;

type Family = 4 | 6;

/**
 * What a node adds in front of the client's packet, per outer family (the VIP's: nodes never mix families): the outer
 * IP header plus the tunnel's. gue counts second chance's private data (12 / 24 bytes on a tagged packet), on by
 * default for gue pools and never turned off by the lab: a tagged packet is the one second chance exists for.
 */
const ENCAPSULATION_BYTES: Readonly<Record<'ipip' | 'gre' | 'gue', Readonly<Record<Family, number>>>> = {
  ipip: { 4: 20, 6: 40 },
  gre: { 4: 24, 6: 44 },
  gue: { 4: 28 + 12, 6: 48 + 24 },
};

/** The inner IP and TCP headers the MSS leaves out (no options: the kernel takes those off the MSS itself). */
const INNER_HEADER_BYTES: Readonly<Record<Family, number>> = { 4: 20 + 20, 6: 40 + 20 };

/**
 * The `advmss` for a backend's routes of `family` under `forwarding` (gue 1,420 / 1,368, ipip 1,440 / 1,400, gre
 * 1,436 / 1,396); undefined where the nodes send the client's packet at its own size (l2, nat): the kernel's MSS.
 */
export function backendAdvmss(forwarding: LabForwarding, family: Family): number | undefined {
  if (forwarding === 'l2' || forwarding === 'nat') return undefined;
  return LAB_LINK_MTU_BYTES - ENCAPSULATION_BYTES[forwarding][family] - INNER_HEADER_BYTES[family];
}

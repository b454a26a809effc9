/**
 * The node's FRR bfdd as the agent talks to it: through vtysh on bfdd's vty socket directory, the way an operator
 * would. The agent does not start bfdd (its supervisor does, like gobgpd's): it configures the sessions from
 * agent.yaml, reads their state and sets them AdminDown. A fake of this interface backs the unit tests; the real one
 * is tested against a real bfdd pair (test/agent-bfd.int.test.ts).
 */
import {
  type BfdPeer,
  type BfdPeerState,
  bfdPeerCommands,
  bfdPeerRemoveCommands,
  parseBfdPeers,
  vtysh,
} from '@l4fleet/daemons';

export interface Bfdd {
  /** Every session bfdd has (`show bfd peers json`). */
  sessions(): Promise<BfdPeerState[]>;
  /** Creates or updates the session with `peer` (idempotent); `shutdown` sets or lifts AdminDown, undefined keeps it. */
  configure(peer: BfdPeer, shutdown?: boolean): Promise<void>;
  /** Removes the session with `peer` (a reload took it out of agent.yaml). */
  remove(peer: Pick<BfdPeer, 'address' | 'localAddress'>): Promise<void>;
}

/** bfdd through `vtysh --vty_socket <vtyDir>` in the agent's own network namespace (the node's). */
export function createVtyshBfdd(vtyDir: string): Bfdd {
  return {
    async sessions() {
      return parseBfdPeers(await vtysh(undefined, vtyDir, 'show bfd peers json'));
    },
    async configure(peer, shutdown) {
      await vtysh(undefined, vtyDir, ...bfdPeerCommands(peer, shutdown));
    },
    async remove(peer) {
      await vtysh(undefined, vtyDir, ...bfdPeerRemoveCommands(peer));
    },
  };
}

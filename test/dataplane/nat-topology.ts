/**
 * The NAT test bed, in network namespaces:
 *
 *   client ──veth── router ══ br0 (one L2 segment) ══ node (l4fleet nftables, forwarding on)
 *                                                  ══ member 0..N-1 (no VIP anywhere; listen on MEMBER_PORT)
 *
 * Members route by default to the router, not the node: a reply that was not rewritten back by the node's conntrack
 * would leave from the member's own address and the client would never match it to its connection. The members answer
 * every line (TCP) or datagram (UDP) with their name and the peer address they saw, so a test learns which member
 * served a flow and from which address it was reached (the node's: SNAT).
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { createNetnsLab, type NetnsHost, type NetnsLab } from '@l4fleet/test-support/netns';

export const NAT_VIP4 = '198.51.100.88';
export const NAT_VIP6 = '2001:db8:88:9::1';
export const NAT_NODE4 = '198.18.82.2';
export const NAT_NODE6 = '2001:db8:88:2::2';
/** The second node (nodes: 2): the router's route to the VIP moves here to stand for ECMP moving a flow. */
export const NAT_NODE2_4 = '198.18.82.3';
export const NAT_CLIENT4 = '198.18.81.2';
export const NAT_CLIENT6 = '2001:db8:88:1::2';
/** Members listen here; the VIPs listen on 443: port translation. */
export const MEMBER_PORT = 8443;
export const member4 = (i: number): string => `198.18.82.${10 + i}`;
export const member6 = (i: number): string => `2001:db8:88:2::${(10 + i).toString(16)}`;
/** An address on the segment where nothing answers (ARP/ND fail): a SYN to it is never answered. */
export const BLACKHOLE4 = '198.18.82.99';

export interface NatTopology {
  readonly lab: NetnsLab;
  readonly client: NetnsHost;
  readonly node: NetnsHost;
  /** With `nodes: 2`: a second node at NAT_NODE2_4, set up like the first. */
  readonly node2?: NetnsHost;
  readonly router: NetnsHost;
  readonly members: readonly NetnsHost[];
  cleanup(): Promise<void>;
}

export async function createNatTopology(opts: {
  members: number;
  nodeForwarding?: boolean;
  nodes?: 1 | 2;
}): Promise<NatTopology> {
  const lab = await createNetnsLab('l4nat');
  try {
    const client = await lab.host('cli');
    const router = await lab.host('rt');
    const node = await lab.host('node');
    const node2 = opts.nodes === 2 ? await lab.host('node2') : undefined;
    const members: NetnsHost[] = [];
    for (let i = 0; i < opts.members; i++) members.push(await lab.host(`m${i}`));
    await lab.veth(client, 'eth0', router, 'c0');
    await lab.veth(node, 'eth0', router, 'n0');
    for (const [i, m] of members.entries()) await lab.veth(m, 'eth0', router, `m${i}`);
    if (node2) await lab.veth(node2, 'eth0', router, 'n1');
    await lab.bridge(router, 'br0', [...(node2 ? ['n0', 'n1'] : ['n0']), ...members.map((_m, i) => `m${i}`)]);
    await router.sh(
      [
        'sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1',
        'ip addr add 198.18.81.1/24 dev c0 && ip addr add 2001:db8:88:1::1/64 dev c0 nodad',
        'ip addr add 198.18.82.1/24 dev br0 && ip addr add 2001:db8:88:2::1/64 dev br0 nodad',
        `ip route add ${NAT_VIP4}/32 via ${NAT_NODE4} && ip -6 route add ${NAT_VIP6}/128 via ${NAT_NODE6}`,
      ].join(' && '),
    );
    await client.sh(
      [
        `ip addr add ${NAT_CLIENT4}/24 dev eth0 && ip addr add ${NAT_CLIENT6}/64 dev eth0 nodad`,
        'ip route add default via 198.18.81.1 && ip -6 route add default via 2001:db8:88:1::1',
        'sysctl -qw net.core.txrehash=0 || true',
      ].join(' && '),
    );
    const forwarding = opts.nodeForwarding === false ? 0 : 1;
    await node.sh(
      [
        `ip addr add ${NAT_NODE4}/24 dev eth0 && ip addr add ${NAT_NODE6}/64 dev eth0 nodad`,
        'ip route add default via 198.18.82.1 && ip -6 route add default via 2001:db8:88:2::1',
        `sysctl -qw net.ipv4.ip_forward=${forwarding} net.ipv6.conf.all.forwarding=${forwarding}`,
      ].join(' && '),
    );
    if (node2) {
      await node2.sh(
        `ip addr add ${NAT_NODE2_4}/24 dev eth0 && ip route add default via 198.18.82.1 && ` +
          'sysctl -qw net.ipv4.ip_forward=1',
      );
    }
    for (const [i, m] of members.entries()) {
      await m.sh(
        [
          `ip addr add ${member4(i)}/24 dev eth0 && ip addr add ${member6(i)}/64 dev eth0 nodad`,
          'ip route add default via 198.18.82.1 && ip -6 route add default via 2001:db8:88:2::1',
        ].join(' && '),
      );
    }
    for (const [i] of members.entries()) {
      await node.run(['ping', '-c1', '-W1', member4(i)], { allowFailure: true });
      await node.run(['ping', '-6', '-c1', '-W1', member6(i)], { allowFailure: true });
    }
    return { lab, client, node, ...(node2 ? { node2 } : {}), router, members, cleanup: () => lab.cleanup() };
  } catch (err) {
    await lab.cleanup();
    throw err;
  }
}

/** A member: answers each TCP line and each UDP datagram with `<name> <peer address>`, on MEMBER_PORT, v4 and v6. */
export const MEMBER_SERVER_PY = `
import socket, sys, threading
name, port = sys.argv[1], int(sys.argv[2])
def reply(peer):
    return ('%s %s\\n' % (name, peer)).encode()
def serve(c, peer):
    with c:
        for _line in c.makefile('rb'):
            c.sendall(reply(peer))
def tcp(fam, addr):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == socket.AF_INET6: s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((addr, port)); s.listen(512)
    while True:
        c, a = s.accept()
        threading.Thread(target=serve, args=(c, a[0]), daemon=True).start()
def udp(fam, addr):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    if fam == socket.AF_INET6: s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((addr, port))
    while True:
        _d, a = s.recvfrom(2048)
        s.sendto(reply(a[0]), a)
for fam, addr in ((socket.AF_INET, '0.0.0.0'), (socket.AF_INET6, '::')):
    for fn in (tcp, udp):
        threading.Thread(target=fn, args=(fam, addr), daemon=True).start()
print('ready', flush=True)
threading.Event().wait()
`;

/**
 * Client: for each flow {src?, sport, dst, dport, protocol} of the JSON on stdin, connects (TCP) or sends (UDP) from
 * that port, sends one line, and prints one JSON line: {"reply": "<member> <peer>", "from": [addr, port]} or
 * {"error": "..."}. UDP replies must come from the VIP (the address the client sent to).
 */
export const NAT_CLIENT_PY = `
import json, socket, sys
for f in json.load(sys.stdin):
    fam = socket.AF_INET6 if ':' in f['dst'] else socket.AF_INET
    kind = socket.SOCK_STREAM if f['protocol'] == 'tcp' else socket.SOCK_DGRAM
    s = socket.socket(fam, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.settimeout(3)
    try:
        s.bind((f.get('src', ''), f['sport']))
        if kind == socket.SOCK_STREAM:
            s.connect((f['dst'], f['dport']))
            s.sendall(b'x\\n')
            data = s.makefile('rb').readline()
            src = s.getpeername()
        else:
            s.sendto(b'x', (f['dst'], f['dport']))
            data, src = s.recvfrom(2048)
        print(json.dumps({'reply': data.decode().strip(), 'from': [src[0], src[1]]}), flush=True)
    except Exception as e:
        print(json.dumps({'error': type(e).__name__ + ': ' + str(e)}), flush=True)
    finally:
        s.close()
`;

/**
 * A client holding one TCP connection: each stdin line is a command. 'send' sends a line and prints the reply, or
 * the error (a dropped segment ends in 'timeout', a reset in 'ConnectionResetError').
 */
export const HOLD_CLIENT_PY = `
import socket, sys
dst, dport, wait = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
fam = socket.AF_INET6 if ':' in dst else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.settimeout(3); s.connect((dst, dport)); s.settimeout(wait)
f = s.makefile('rb')
print('connected', flush=True)
for line in sys.stdin:
    try:
        s.sendall(b'x\\n')
        r = f.readline().decode().strip()
        print(r if r else 'closed', flush=True)
    except Exception as e:
        print(type(e).__name__, flush=True)
`;

/** A connection HOLD_CLIENT_PY holds from `client` to `dst`:443: `ready()` resolves at 'connected', `send()` to the reply line. */
export interface HeldConnection {
  ready(): Promise<string>;
  /** The reply line, 'timeout', or the error's name. */
  send(): Promise<string>;
  close(): void;
}

/** Starts HOLD_CLIENT_PY in `client`'s namespace toward `dst`:443; each read waits `waitS` at most. */
export function holdConnection(client: NetnsHost, dst: string, waitS: number): HeldConnection {
  const child = spawn('ip', ['netns', 'exec', client.ns, 'python3', '-c', HOLD_CLIENT_PY, dst, '443', `${waitS}`]);
  const lines = createInterface({ input: child.stdout });
  const queue: string[] = [];
  const waiters: ((l: string) => void)[] = [];
  lines.on('line', (l) => {
    const w = waiters.shift();
    if (w) w(l);
    else queue.push(l);
  });
  const next = (): Promise<string> =>
    new Promise((resolve) => {
      const l = queue.shift();
      if (l !== undefined) resolve(l);
      else waiters.push(resolve);
    });
  return {
    ready: next,
    send: (): Promise<string> => {
      child.stdin.write('send\n');
      return next();
    },
    close: () => child.kill('SIGKILL'),
  };
}

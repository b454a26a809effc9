/**
 * A fake etcd3 Namespace for the node registration (registration.ts): leases whose grants can be held or failed and
 * whose loss is fired by hand, and txns of puts and deletes fenced on a key's mod revision. Test code only.
 */

/** etcd's default --max-request-bytes: 1.5 MiB. */
const ETCD_MAX_REQUEST_BYTES = 1.5 * 1024 * 1024;

/** Just what a registration uses of an etcd namespace: a lease, and txns of puts and deletes that can be made to fail. */
export class FakeNamespace {
  readonly kv = new Map<string, string>();
  failNext = 0;
  /** Grants fail while set; `grants` counts every grant asked for. */
  failGrants = false;
  grants = 0;
  /** The 'lost' listener of each lease granted, newest last. */
  readonly lost: ((err: Error) => void)[] = [];
  /** While set, a grant waits for it to resolve first (a grant in flight). */
  grantGate: Promise<void> | undefined;
  /** Lease ids revoked. */
  readonly revokedIds: string[] = [];
  /** How long each grant, txn and revoke takes, in ms (timers: fake ones in the tests that set it). */
  callMs = 0;
  /** Txns committed. */
  commits = 0;

  private async slow(): Promise<void> {
    if (this.callMs > 0) await new Promise((r) => setTimeout(r, this.callMs));
  }

  lease() {
    let id = '';
    return {
      grant: async () => {
        this.grants += 1;
        const n = this.grants;
        if (this.grantGate) await this.grantGate;
        await this.slow();
        if (this.failGrants) throw new Error('etcd unavailable');
        id = String(n);
        return id;
      },
      on: (_event: 'lost', fn: (err: Error) => void) => void this.lost.push(fn),
      release: () => undefined,
      revoke: async () => {
        await this.slow();
        this.revokedIds.push(id);
        // etcd deletes the keys still on a revoked lease.
        for (const [key, held] of this.leases) if (held === id) this.remove(key);
      },
      revoked: () => false,
      keepaliveOnce: async () => undefined,
    };
  }

  /** Each key's lease ('0': none) and mod revision, as etcd keeps them. */
  readonly leases = new Map<string, string>();
  readonly mods = new Map<string, number>();
  revision = 1;

  remove(key: string): void {
    this.kv.delete(key);
    this.leases.delete(key);
    this.mods.delete(key);
  }

  /** Puts `key` as another client would (a node's record on lease `lease`). */
  putAs(key: string, value: string, lease: string): void {
    this.revision += 1;
    this.kv.set(key, value);
    this.leases.set(key, lease);
    this.mods.set(key, this.revision);
  }

  get(key: string) {
    return {
      exec: async () => {
        const value = this.kv.get(key);
        if (value === undefined) return { kvs: [] };
        return {
          kvs: [
            { value: Buffer.from(value), lease: this.leases.get(key) ?? '0', mod_revision: String(this.mods.get(key)) },
          ],
        };
      },
    };
  }

  put(key: string) {
    const op = {
      key,
      value: '',
      leaseId: '0',
      lease: (l: string) => Object.assign(op, { leaseId: l }),
      // A put on its own (reportStatus): no compare, no txn.
      exec: async () => {
        await this.slow();
        this.putAs(op.key, op.value, op.leaseId);
      },
    };
    return { value: (v: string) => Object.assign(op, { value: v }) };
  }

  delete() {
    return { key: (key: string) => ({ key, delete: true }) };
  }

  if(key: string, target: 'Create' | 'Mod', _cmp: string, value: number | string) {
    // The registration's compares: `Create > -1` (always true) and `Mod == n` (0: absent).
    const holds = () => target === 'Create' || (this.mods.get(key) ?? 0) === Number(value);
    let ops: { key: string; value?: string; delete?: boolean; leaseId?: string }[] = [];
    const txn = {
      // biome-ignore lint/suspicious/noThenProperty: etcd3's txn builder is called `then`
      then: (...o: typeof ops) => {
        ops = o;
        return txn;
      },
      commit: async () => {
        await this.slow();
        this.commits += 1;
        const bytes = ops.reduce((n, op) => n + op.key.length + (op.value?.length ?? 0), 0);
        if (bytes > ETCD_MAX_REQUEST_BYTES) throw new Error('etcdserver: request is too large');
        if (this.failNext > 0) {
          this.failNext -= 1;
          throw new Error('etcd request timed out');
        }
        if (!holds()) return { succeeded: false };
        for (const op of ops) {
          if (op.delete) this.remove(op.key);
          else this.putAs(op.key, op.value as string, op.leaseId ?? '0');
        }
        return { succeeded: true };
      },
    };
    return txn;
  }
}

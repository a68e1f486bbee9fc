// The semaphore in etcd v2 through the shared client: create-if-absent, then every change a
// read-modify-compare-and-swap on the modifiedIndex it read (locksmith's lock.store). A concurrent
// writer makes the swap fail with "Compare failed"; that error goes to the caller, as in Go, and
// only the daemon (and the FleetLock endpoint) retry.
import { EtcdError, ErrorCode, type Client } from "../kvclient/index.ts";
import {
  INITIAL,
  encodeSemaphore,
  expire,
  holds,
  lock,
  parseSemaphore,
  renew,
  semaphoreKey,
  setMax,
  SemaphoreError,
  unlock,
  type Semaphore,
} from "./semaphore.ts";
import { logger } from "../log/log.ts";

const log = logger("locksmith");

export interface EtcdLockOptions {
  group?: string;
  /**
   * --lock-ttl in seconds: this client's locks record a renewal time, and its lock attempts first
   * drop holders not renewed within the TTL. 0 = off (the original behaviour).
   */
  lockTtl?: number;
  /** Unix seconds; tests pin it. */
  now?: () => number;
}

export class EtcdLock {
  readonly key: string;
  private readonly ttl: number;
  private readonly now: () => number;

  constructor(
    private readonly client: Client,
    o: EtcdLockOptions = {},
  ) {
    this.key = semaphoreKey(o.group ?? "");
    this.ttl = o.lockTtl ?? 0;
    this.now = o.now ?? (() => Math.floor(Date.now() / 1000));
  }

  /** Creates the initial value unless one exists (every client does this on connect). */
  async init(): Promise<void> {
    // A read first: it fails over to a live member and pins it, while the create below is never
    // retried on another endpoint (a create must not run twice) and would stick to a dead one.
    try {
      await this.client.get(this.key);
      return;
    } catch (e) {
      if (!(e instanceof EtcdError && e.errorCode === ErrorCode.KeyNotFound)) throw e;
    }
    try {
      await this.client.create(this.key, encodeSemaphore(INITIAL));
    } catch (e) {
      if (!(e instanceof EtcdError && e.errorCode === ErrorCode.NodeExist)) throw e;
    }
  }

  async get(): Promise<{ sem: Semaphore; index: number }> {
    const r = await this.client.get(this.key);
    return { sem: parseSemaphore(r.node.value ?? "", this.key), index: r.node.modifiedIndex ?? 0 };
  }

  /** One read-modify-CAS; `op` may throw to refuse (nothing is written then). Returns old and new. */
  async update(op: (s: Semaphore) => Semaphore): Promise<{ before: Semaphore; after: Semaphore }> {
    const { sem, index } = await this.get();
    const after = op(sem);
    await this.client.compareAndSwap(this.key, encodeSemaphore(after), { prevIndex: index });
    return { before: sem, after };
  }

  lock(id: string): Promise<Semaphore> {
    return this.update((s) => {
      if (this.ttl <= 0) return lock(s, id);
      const { sem, dropped } = expire(s, this.now(), this.ttl);
      if (dropped.length > 0) log.warn(`dropping holders not renewed within ${this.ttl}s: ${dropped.join(", ")}`);
      return lock(sem, id, this.now());
    }).then((r) => r.after);
  }

  unlock(id: string): Promise<Semaphore> {
    return this.update((s) => unlock(s, id)).then((r) => r.after);
  }

  /** Records that `id` is alive (--lock-ttl); "holder does not exist" when it no longer holds. */
  renew(id: string): Promise<Semaphore> {
    return this.update((s) => renew(s, id, this.now())).then((r) => r.after);
  }

  setMax(n: number): Promise<{ before: Semaphore; after: Semaphore }> {
    return this.update((s) => setMax(s, n));
  }

  /** unlockIfHeld: a lock that is not held counts as released. */
  async unlockIfHeld(id: string): Promise<void> {
    try {
      await this.update((s) => {
        if (!holds(s, id)) throw new SemaphoreError("not-exists", "holder does not exist");
        return unlock(s, id);
      });
    } catch (e) {
      if (e instanceof SemaphoreError && e.kind === "not-exists") return;
      throw e;
    }
  }
}

/** True for the swap losing a race: worth retrying at once, unlike a full semaphore. */
export function isCompareFailed(e: unknown): boolean {
  return e instanceof EtcdError && e.errorCode === ErrorCode.TestFailed;
}

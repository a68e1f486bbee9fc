// The member: the store behind a log. A request becomes a proposal, the proposal an entry made
// durable in the WAL (group commit: everything proposed while a sync runs shares the next one),
// the committed entry is applied to the store and the waiting request answered with its event.
// It is the shape of a Raft node's Ready loop with a single voter, so Raft replaces `flush`
// without touching the store or the HTTP layer.
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { EtcdError, ErrorCode } from "./errors.ts";
import { Store } from "./store.ts";
import type { Command, Entry, HardState, Proposal, StoreEvent } from "./types.ts";
import { clusterId, type Member, memberId } from "./membership.ts";
import { Cluster, type ClusterState, type ConfChange } from "./cluster.ts";
import { Wal } from "../wal/wal.ts";
import { Snapshotter } from "../snap/snapshotter.ts";
import { logger } from "../log/log.ts";

const log = logger("etcdserver");

export interface ServerConfig {
  name: string;
  dataDir: string;
  advertiseClientUrls: string[];
  advertisePeerUrls: string[];
  /** name -> peer URLs, from --initial-cluster. */
  initialCluster: Map<string, string[]>;
  clusterToken: string;
  electionMs: number;
  snapshotCount: number;
}

/** What an entry carries: a store command (type 0) or a membership change (type 1). */
type Work = { cmd: Command } | { conf: ConfChange };

interface Pending {
  entry: Entry;
  work: Work;
  resolve: (e: StoreEvent | null) => void;
  reject: (e: unknown) => void;
}

interface WalMetadata {
  memberId: string;
  clusterId: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** How often the leader checks for keys due to expire (etcd: every 500 ms). */
const SYNC_INTERVAL_MS = 500;

export class EtcdServer {
  readonly startTime = new Date();
  term = 0;
  /** Raft indexes: last in the log, committed (durable), applied to the store. */
  lastIndex = 0;
  commitIndex = 0;
  appliedIndex = 0;
  private snapshotIndex = 0;
  private snapshotting = false;
  private queue: Pending[] = [];
  private flushing = false;
  private stopped = false;
  private syncTimer: ReturnType<typeof setInterval> | undefined;
  private proposalSeq = 0;
  private readonly requestTimeoutMs: number;

  private constructor(
    readonly cfg: ServerConfig,
    readonly store: Store,
    readonly cluster: Cluster,
    private readonly wal: Wal,
    private readonly snapshotter: Snapshotter,
    readonly id: string,
    readonly clusterId: string,
  ) {
    this.requestTimeoutMs = 5000 + 2 * cfg.electionMs;
  }

  static async open(cfg: ServerConfig): Promise<EtcdServer> {
    const walDir = join(cfg.dataDir, "member", "wal");
    const snapDir = join(cfg.dataDir, "member", "snap");
    await mkdir(snapDir, { recursive: true });
    const snapshotter = new Snapshotter(snapDir);

    const snap = await snapshotter.loadNewest();
    let store = new Store();
    let cluster = new Cluster();
    if (snap) {
      // Membership on the first line, the store after it (JSON has no raw newlines).
      const text = decoder.decode(snap.data);
      const nl = text.indexOf("\n");
      cluster = Cluster.from(JSON.parse(text.slice(0, nl)) as ClusterState);
      store = Store.fromSnapshot(text.slice(nl + 1));
      log.info(`recovered store from snapshot at raft index ${snap.index} (etcd index ${store.index})`);
    }

    let wal: Wal;
    let meta: WalMetadata;
    let hs: HardState | null = null;
    let entries: Entry[] = [];
    let bootstrap: Entry[] = [];
    if (Wal.exists(walDir)) {
      const opened = await Wal.open(walDir, { index: snap?.index ?? 0, term: snap?.term ?? 0 });
      wal = opened.wal;
      meta = JSON.parse(decoder.decode(opened.metadata)) as WalMetadata;
      hs = opened.hardState;
      entries = opened.entries;
    } else {
      const id = memberId(cfg.advertisePeerUrls, cfg.clusterToken);
      const initial = [...cfg.initialCluster.values()].map((urls) => ({
        id: memberId(urls, cfg.clusterToken),
        name: "",
        peerURLs: urls,
        clientURLs: [],
      }));
      meta = { memberId: id, clusterId: clusterId(initial.map((m) => m.id)) };
      wal = await Wal.create(walDir, encoder.encode(JSON.stringify(meta)));
      // As in Raft's bootstrap: the initial members are the first, already committed, entries.
      bootstrap = initial.map((member, i) => confEntry(i + 1, 1, { type: "add", member }));
      await wal.save({ term: 1, vote: "", commit: bootstrap.length }, bootstrap);
      entries = bootstrap;
      hs = { term: 1, vote: "", commit: bootstrap.length };
      log.info(`created new member ${meta.memberId} in cluster ${meta.clusterId}`);
    }

    const server = new EtcdServer(cfg, store, cluster, wal, snapshotter, meta.memberId, meta.clusterId);
    server.snapshotIndex = snap?.index ?? 0;
    server.appliedIndex = server.commitIndex = server.lastIndex = snap?.index ?? 0;
    server.term = Math.max(hs?.term ?? 0, snap?.term ?? 0);
    // Only what was committed is applied; a durable but uncommitted tail is overwritten by new entries.
    const commit = hs?.commit ?? 0;
    let replayed = 0;
    for (const e of entries) {
      if (e.index > commit) break;
      server.applyEntry(e.index, decodeWork(e));
      server.lastIndex = server.commitIndex = e.index;
      replayed++;
    }
    if (replayed > bootstrap.length) log.info(`replayed ${replayed} log entries up to raft index ${server.commitIndex}`);
    // A restarted single member wins the election of a new term.
    server.term += 1;
    server.syncTimer = setInterval(() => server.maybeExpire(), SYNC_INTERVAL_MS);
    if (server.leaderId) log.info(`member ${server.id} is leader at term ${server.term}, etcd index ${store.index}`);
    else log.warn(`member ${server.id} has no quorum: ${cluster.size} voters and no peers yet`);
    server.publish();
    return server;
  }

  /**
   * Without a peer transport (Raft comes later) only this member acknowledges entries: with more
   * than one voter nothing commits, exactly as etcd with its peers down.
   */
  get hasQuorum(): boolean {
    return this.cluster.size === 1 && this.cluster.get(this.id) !== undefined;
  }

  /** When quorum went, the leader keeps its role for one election timeout (Raft's CheckQuorum). */
  private quorumLostAt: number | null = null;

  get leaderId(): string | null {
    if (this.hasQuorum) return this.id;
    if (this.quorumLostAt !== null && Date.now() - this.quorumLostAt < this.cfg.electionMs) return this.id;
    return null;
  }

  get state(): "StateLeader" | "StateCandidate" {
    return this.leaderId ? "StateLeader" : "StateCandidate";
  }

  members(): Member[] {
    return this.cluster.list();
  }

  /** A member counts as started once its name is published (etcd's IsStarted). */
  isStarted = (id: string): boolean => (this.cluster.get(id)?.name ?? "") !== "";

  /** Publishes this member's name and client URLs if the cluster has others on record. */
  private publish(): void {
    const me = this.cluster.get(this.id);
    if (!me) return;
    const clientURLs = this.cfg.advertiseClientUrls;
    if (me.name === this.cfg.name && me.clientURLs.join(",") === clientURLs.join(",")) return;
    this.enqueue({ conf: { type: "attributes", id: this.id, name: this.cfg.name, clientURLs } }).catch((e) =>
      log.warn(`publishing member attributes failed: ${(e as Error).message}`),
    );
  }

  /** Runs a membership change through the log; resolves once applied. */
  async changeMembership(conf: ConfChange): Promise<void> {
    await this.enqueue({ conf });
  }

  /** Puts a mutation (or a quorum read) through the log; resolves with its event once applied. */
  async propose(cmd: Exclude<Command, { op: "sync" }>): Promise<StoreEvent> {
    return (await this.enqueue({ cmd }))!;
  }

  private enqueue(work: Work): Promise<StoreEvent | null> {
    if (this.stopped) return Promise.reject(new EtcdError(ErrorCode.RaftInternal, "etcdserver: server stopped", 0));
    const timedOut = () => new EtcdError(ErrorCode.RaftInternal, "etcdserver: request timed out", 0);
    if (!this.hasQuorum) {
      // No quorum: the proposal can never commit; answer as etcd does when its request times out.
      return new Promise((_, reject) => setTimeout(() => reject(timedOut()), this.requestTimeoutMs));
    }
    const index = ++this.lastIndex;
    const entry =
      "cmd" in work
        ? normalEntry(index, this.term, { id: `${this.id}-${++this.proposalSeq}`, cmd: work.cmd })
        : confEntry(index, this.term, work.conf);
    return new Promise<StoreEvent | null>((resolve, reject) => {
      const timer = setTimeout(() => reject(timedOut()), this.requestTimeoutMs);
      this.queue.push({
        entry,
        work,
        resolve: (e) => {
          clearTimeout(timer);
          resolve(e);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      if (!this.flushing) void this.flush();
    });
  }

  /**
   * Waits until every entry committed before the call is applied (Raft's ReadIndex). With one voter
   * the leader needs no heartbeat round: its commit index is the cluster's.
   */
  async linearizableRead(): Promise<void> {
    const readIndex = this.commitIndex;
    while (this.appliedIndex < readIndex) await Bun.sleep(1);
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue;
        this.queue = [];
        const last = batch[batch.length - 1]!.entry.index;
        await this.wal.save(
          { term: this.term, vote: "", commit: last },
          batch.map((p) => p.entry),
        );
        this.commitIndex = last;
        for (const p of batch) {
          try {
            p.resolve(this.applyEntry(p.entry.index, p.work));
          } catch (e) {
            p.reject(e);
          }
        }
        this.maybeSnapshot();
      }
    } catch (e) {
      // The disk failed under an acknowledged-write promise: like etcd, stop rather than guess.
      log.fatal(`wal: write failed: ${(e as Error).message}`);
      for (const p of this.queue) p.reject(new EtcdError(ErrorCode.RaftInternal, "etcdserver: server stopped", 0));
      process.exit(1);
    } finally {
      this.flushing = false;
    }
  }

  /** Applies one committed entry; returns the store event (none for sync and membership entries). */
  private applyEntry(index: number, work: Work): StoreEvent | null {
    this.appliedIndex = index;
    if ("conf" in work) {
      const had = this.hasQuorum;
      this.cluster.apply(work.conf);
      if (had && !this.hasQuorum) this.quorumLostAt = Date.now();
      return null;
    }
    const cmd = work.cmd;
    if (cmd.op === "sync") {
      this.store.deleteExpired(cmd.time);
      return null;
    }
    return this.store.apply(cmd);
  }

  private expiring = false;

  /** Only the leader expires keys, through a replicated entry carrying its clock (spec §1.9). */
  private maybeExpire(): void {
    const next = this.store.nextExpiry();
    const now = Date.now();
    if (next === null || next > now || this.expiring || this.stopped) return;
    this.expiring = true;
    this.enqueue({ cmd: { op: "sync", time: now } })
      .catch((e) => log.warn(`expiry sync failed: ${(e as Error).message}`))
      .finally(() => {
        this.expiring = false;
      });
  }

  private maybeSnapshot(): void {
    if (this.snapshotting || this.appliedIndex - this.snapshotIndex < this.cfg.snapshotCount) return;
    this.snapshotting = true;
    const index = this.appliedIndex;
    const term = this.term;
    const data = encoder.encode(`${JSON.stringify(this.cluster.toJSON())}\n${this.store.toSnapshot()}`);
    void (async () => {
      try {
        await this.snapshotter.save({ index, term, data });
        await this.wal.saveSnapshot({ index, term });
        await this.wal.releaseTo(index);
        this.snapshotIndex = index;
        log.info(`snapshot at raft index ${index}; log before it released`);
      } catch (e) {
        log.error(`snapshot at raft index ${index} failed: ${(e as Error).message}`);
      } finally {
        this.snapshotting = false;
      }
    })();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.syncTimer);
    while (this.flushing || this.snapshotting) await Bun.sleep(5);
    await this.wal.close();
  }
}

function normalEntry(index: number, term: number, proposal: Proposal): Entry {
  return { term, index, type: 0, data: encoder.encode(JSON.stringify(proposal)) };
}

function confEntry(index: number, term: number, conf: ConfChange): Entry {
  return { term, index, type: 1, data: encoder.encode(JSON.stringify(conf)) };
}

function decodeWork(e: Entry): Work {
  const parsed = JSON.parse(decoder.decode(e.data)) as Proposal | ConfChange;
  return e.type === 1 ? { conf: parsed as ConfChange } : { cmd: (parsed as Proposal).cmd };
}

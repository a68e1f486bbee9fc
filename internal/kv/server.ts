// The member: the v2 store replicated by Raft. A request becomes a proposal; Raft hands back
// Ready batches: entries and hard state to make durable in the WAL (everything proposed while a
// sync runs shares the next one), messages for peers (a leader sends while it syncs, a follower
// only after), committed entries to apply to the store, read states for linearizable reads.
// The waiting request is answered once its entry is applied on this member.
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { EtcdError, ErrorCode } from "./errors.ts";
import { Store } from "./store.ts";
import type { Command, Entry, HardState as WalHardState, Proposal, StoreEvent } from "./types.ts";
import { clusterId, type Member, memberId } from "./membership.ts";
import { Cluster, type ClusterState, type ConfChange } from "./cluster.ts";
import { Wal } from "../wal/wal.ts";
import { Snapshotter } from "../snap/snapshotter.ts";
import {
  decodeConfChange,
  ErrConfChangePending,
  ErrProposalDropped,
  type HardState,
  MemoryStorage,
  type NodeId,
  RawNode,
  type ReadState,
  type Snapshot,
  type SoftState,
} from "../raft/index.ts";
import { type PeerTls, peerFetchInit, Transport } from "../rafthttp/transport.ts";
import { logger } from "../log/log.ts";

const log = logger("etcdserver");

export interface ServerConfig {
  name: string;
  dataDir: string;
  advertiseClientUrls: string[];
  advertisePeerUrls: string[];
  /** name -> peer URLs, from --initial-cluster. */
  initialCluster: Map<string, string[]>;
  clusterState: "new" | "existing";
  clusterToken: string;
  heartbeatMs: number;
  electionMs: number;
  snapshotCount: number;
  /** Client side of peer TLS (--peer-trusted-ca-file, --peer-cert-file, --peer-key-file). */
  peerTls?: PeerTls;
}

interface WalMetadata {
  memberId: string;
  clusterId: string;
  /** The members known when this member was created: Raft's bootstrap entries name only IDs. */
  members: Member[];
}

interface Waiter {
  resolve: (e: StoreEvent | null) => void;
  reject: (e: unknown) => void;
  deadline: number;
  /** Kept until Raft accepts it: a proposal made while no leader is known is retried. */
  data: Uint8Array | null;
  conf?: { type: "add" | "remove"; nodeId: string };
}

interface ReadWaiter {
  resolve: () => void;
  reject: (e: unknown) => void;
  deadline: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** How often the leader checks for keys due to expire (etcd: every 500 ms). */
const SYNC_INTERVAL_MS = 500;
/** Entries kept in memory behind the applied index for slow followers (etcd's SnapshotCatchUpEntries). */
const CATCH_UP_ENTRIES = 5000;
/** How many applied entries between compactions of the in-memory log. */
const COMPACT_EVERY = 1000;

const timedOut = () => new EtcdError(ErrorCode.RaftInternal, "etcdserver: request timed out", 0);
const stoppedError = () => new EtcdError(ErrorCode.RaftInternal, "etcdserver: server stopped", 0);

/**
 * The in-memory log Raft reads. Raft asks for a snapshot only to send one to a follower that needs
 * compacted entries: it is made then, from the applied state, and not kept, so no copy of the
 * whole store stays in memory and the log can be compacted without waiting for a snapshot on disk.
 */
class ServerStorage extends MemoryStorage {
  constructor(private readonly current: () => { index: number; voters: NodeId[]; data: () => Uint8Array }) {
    super();
  }

  override snapshot(): Snapshot {
    const c = this.current();
    return { index: c.index, term: this.term(c.index), voters: c.voters, data: c.data() };
  }
}

export class EtcdServer {
  readonly startTime = new Date();
  /** When the current leader became known here (/v2/stats/self leaderInfo). */
  leaderSince = new Date();
  private soft: SoftState = { lead: "", state: "StateFollower" };
  private hard: HardState = { term: 0, vote: "", commit: 0 };
  appliedIndex = 0;
  private snapshotIndex = 0;
  private lastCompact = 0;
  private snapshotting = false;
  private running = false;
  private scheduled = false;
  private stopped = false;
  private seq = 0;
  private readonly waiters = new Map<string, Waiter>();
  private readonly undelivered = new Set<string>();
  /** Linearizable reads: those waiting for a read index, and batches waiting to apply up to one. */
  private readQueue: ReadWaiter[] = [];
  private readInFlight: { ctx: string; since: number; waiters: ReadWaiter[] } | null = null;
  private readsAwaitingApply: { index: number; waiters: ReadWaiter[] }[] = [];
  private expiring = false;
  private timers: ReturnType<typeof setInterval>[] = [];
  private readonly requestTimeoutMs: number;
  readonly node: RawNode;
  readonly transport: Transport;
  private readonly removedSignal = Promise.withResolvers<void>();
  /**
   * Settles once this member learns it was removed from the cluster: it must stop. Also when it
   * learns so while it opens (a removed member restarted on its data), before anyone could listen.
   */
  readonly removal: Promise<void> = this.removedSignal.promise;

  private constructor(
    readonly cfg: ServerConfig,
    readonly store: Store,
    public cluster: Cluster,
    private readonly wal: Wal,
    private readonly snapshotter: Snapshotter,
    private readonly storage: ServerStorage,
    private readonly meta: WalMetadata,
    applied: number,
    bootstrapPeers: NodeId[] | undefined,
  ) {
    this.id = meta.memberId;
    this.clusterId = meta.clusterId;
    this.requestTimeoutMs = 5000 + 2 * cfg.electionMs;
    this.appliedIndex = this.snapshotIndex = this.lastCompact = applied;
    this.node = new RawNode({
      id: this.id,
      peers: bootstrapPeers,
      electionTick: Math.max(2, Math.round(cfg.electionMs / cfg.heartbeatMs)),
      heartbeatTick: 1,
      random: Math.random,
      preVote: true,
      checkQuorum: true,
      storage,
      applied,
    });
    this.transport = new Transport({
      selfId: this.id,
      clusterId: this.clusterId,
      tls: cfg.peerTls,
      onMessage: (m) => {
        if (this.stopped) return;
        this.node.step(m);
        this.kick();
      },
      onUnreachable: (id) => this.node.reportUnreachable(id),
      onSnapshotStatus: (id, ok) => {
        this.node.reportSnapshot(id, ok);
        this.kick();
      },
      isRemoved: (id) => this.cluster.isRemoved(id),
      onRemoved: () => this.removed(),
    });
  }

  readonly id: string;
  readonly clusterId: string;

  static async open(cfg: ServerConfig): Promise<EtcdServer> {
    const walDir = join(cfg.dataDir, "member", "wal");
    const snapDir = join(cfg.dataDir, "member", "snap");
    await mkdir(snapDir, { recursive: true });
    const snapshotter = new Snapshotter(snapDir);

    let store = new Store();
    let cluster = new Cluster();
    let server: EtcdServer;
    const current = () => ({
      index: server.appliedIndex,
      voters: server.cluster.list().map((m) => m.id),
      data: () => server.snapshotData(),
    });
    const storage = new ServerStorage(current);

    if (Wal.exists(walDir)) {
      // Read line by line: neither the file nor its text is ever whole in memory.
      const snap = await snapshotter.newest();
      let voters: NodeId[] = [];
      if (snap) {
        ({ store, cluster } = decodeSnapshotLines(snap.lines()));
        voters = cluster.list().map((m) => m.id);
        storage.applySnapshot({ index: snap.index, term: snap.term, voters, data: new Uint8Array(0) });
        log.info(`recovered store from snapshot at raft index ${snap.index} (etcd index ${store.index})`);
      }
      const opened = await Wal.open(walDir, { index: snap?.index ?? 0, term: snap?.term ?? 0 });
      const meta = JSON.parse(decoder.decode(opened.metadata)) as WalMetadata;
      storage.append(opened.entries);
      if (opened.hardState) storage.setHardState(opened.hardState);
      server = new EtcdServer(cfg, store, cluster, opened.wal, snapshotter, storage, meta, snap?.index ?? 0, undefined);
      server.hard = opened.hardState ?? server.hard;
      log.info(`restarted member ${meta.memberId} in cluster ${meta.clusterId} at commit index ${server.hard.commit}`);
      // A snapshot made just after its removal applied holds it: no entry replayed would tell.
      if (cluster.isRemoved(meta.memberId)) server.removed();
    } else {
      const meta = await newMetadata(cfg);
      const wal = await Wal.create(walDir, encoder.encode(JSON.stringify(meta)));
      // A founding member bootstraps the initial voters; a joining one learns them from the leader.
      const peers = cfg.clusterState === "new" ? meta.members.map((m) => m.id).sort() : undefined;
      server = new EtcdServer(cfg, store, cluster, wal, snapshotter, storage, meta, 0, peers);
      log.info(`created new member ${meta.memberId} in cluster ${meta.clusterId}`);
    }
    server.transport.setPeers(server.cluster.size > 0 ? server.cluster.list() : server.meta.members);
    server.timers.push(setInterval(() => server.tick(), cfg.heartbeatMs));
    server.timers.push(setInterval(() => server.maybeExpire(), SYNC_INTERVAL_MS));
    // A single voter need not wait an election timeout to lead itself; Raft campaigns only once
    // the bootstrap entries of the first Ready are applied.
    await server.run();
    const voters = server.node.status().voters;
    if (voters.length === 1 && voters[0] === server.id) server.node.campaign();
    server.kick();
    return server;
  }

  get term(): number {
    return this.hard.term;
  }

  get commitIndex(): number {
    return this.hard.commit;
  }

  get leaderId(): string | null {
    return this.soft.lead === "" ? null : this.soft.lead;
  }

  get state(): string {
    return this.soft.state === "StatePreCandidate" ? "StateCandidate" : this.soft.state;
  }

  members(): Member[] {
    return this.cluster.list();
  }

  /** A member counts as started once its name is published (etcd's IsStarted). */
  isStarted = (id: string): boolean => (this.cluster.get(id)?.name ?? "") !== "";

  /** Puts a mutation (or a quorum read) through the log; resolves with its event once applied here. */
  async propose(cmd: Exclude<Command, { op: "sync" }>): Promise<StoreEvent> {
    return (await this.submit({ cmd }))!;
  }

  /** Runs a membership change through the log; resolves once applied here. */
  async changeMembership(conf: ConfChange): Promise<void> {
    await this.submit({ conf });
  }

  private submit(work: { cmd: Command } | { conf: ConfChange }): Promise<StoreEvent | null> {
    if (this.stopped) return Promise.reject(stoppedError());
    const id = `${this.id}-${++this.seq}`;
    const proposal: Proposal = "cmd" in work ? { id, cmd: work.cmd } : { id, conf: work.conf };
    const data = encoder.encode(JSON.stringify(proposal));
    const voterChange =
      "conf" in work && (work.conf.type === "add" || work.conf.type === "remove")
        ? { type: work.conf.type, nodeId: work.conf.type === "add" ? work.conf.member.id : work.conf.id }
        : undefined;
    return new Promise<StoreEvent | null>((resolve, reject) => {
      const w: Waiter = { resolve, reject, deadline: Date.now() + this.requestTimeoutMs, data, conf: voterChange };
      this.waiters.set(id, w);
      this.offer(id, w);
      this.kick();
    });
  }

  /** Hands a proposal to Raft; without a known leader it stays queued and is offered again each tick. */
  private offer(id: string, w: Waiter): void {
    if (!w.data) return;
    try {
      if (w.conf) this.node.proposeConfChange(w.conf, w.data);
      else this.node.propose(w.data);
      w.data = null;
      this.undelivered.delete(id);
    } catch (e) {
      if (e instanceof ErrProposalDropped || e instanceof ErrConfChangePending) this.undelivered.add(id);
      else throw e;
    }
  }

  /**
   * Waits until this member has applied everything committed before the call (Raft's ReadIndex).
   * Reads waiting at the same time share one round of heartbeats.
   */
  linearizableRead(): Promise<void> {
    if (this.stopped) return Promise.reject(stoppedError());
    return new Promise<void>((resolve, reject) => {
      this.readQueue.push({ resolve, reject, deadline: Date.now() + this.requestTimeoutMs });
      this.issueRead();
      this.kick();
    });
  }

  private issueRead(): void {
    if (this.readInFlight || this.readQueue.length === 0) return;
    const ctx = `${this.id}-r${++this.seq}`;
    this.readInFlight = { ctx, since: Date.now(), waiters: this.readQueue };
    this.readQueue = [];
    this.node.readIndex(ctx);
  }

  private onReadState(rs: ReadState): void {
    if (!this.readInFlight || rs.ctx !== this.readInFlight.ctx) return;
    this.readsAwaitingApply.push({ index: rs.index, waiters: this.readInFlight.waiters });
    this.readInFlight = null;
    this.issueRead();
  }

  private releaseReads(): void {
    if (this.readsAwaitingApply.length === 0) return;
    const still: typeof this.readsAwaitingApply = [];
    for (const r of this.readsAwaitingApply) {
      if (r.index <= this.appliedIndex) for (const w of r.waiters) w.resolve();
      else still.push(r);
    }
    this.readsAwaitingApply = still;
  }

  private tick(): void {
    if (this.stopped) return;
    this.node.tick();
    const now = Date.now();
    for (const [id, w] of this.waiters) {
      if (w.deadline <= now) {
        this.waiters.delete(id);
        this.undelivered.delete(id);
        w.reject(timedOut());
      }
    }
    for (const id of this.undelivered) this.offer(id, this.waiters.get(id)!);
    this.expireReads(now);
    this.kick();
  }

  private expireReads(now: number): void {
    const keep = (ws: ReadWaiter[]) =>
      ws.filter((w) => {
        if (w.deadline > now) return true;
        w.reject(timedOut());
        return false;
      });
    this.readQueue = keep(this.readQueue);
    for (const r of this.readsAwaitingApply) r.waiters = keep(r.waiters);
    if (this.readInFlight) {
      this.readInFlight.waiters = keep(this.readInFlight.waiters);
      // A read index lost with a leader change is asked for again.
      if (now - this.readInFlight.since > this.cfg.electionMs) {
        this.readQueue.unshift(...this.readInFlight.waiters);
        this.readInFlight = null;
      }
    }
    this.issueRead();
  }

  private kick(): void {
    if (this.running || this.scheduled || this.stopped) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      void this.run();
    });
  }

  /** The Ready loop: persist, send, apply, advance, until Raft has nothing more to say. */
  private async run(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (!this.stopped && this.node.hasReady()) {
        const rd = this.node.ready();
        if (rd.softState) this.onSoftState(rd.softState);
        const leader = this.soft.state === "StateLeader";
        // A leader's own entries count towards commit only once they are durable, so it may send
        // while it syncs; a follower must not acknowledge what it could still lose.
        if (leader) this.transport.send(rd.messages);
        if (rd.snapshot) await this.installSnapshot(rd.snapshot);
        if (rd.entries.length > 0 || rd.hardState) {
          await this.wal.save(rd.hardState ? toWalHardState(rd.hardState) : null, rd.entries);
          this.storage.append(rd.entries);
          if (rd.hardState) {
            this.storage.setHardState(rd.hardState);
            this.hard = rd.hardState;
          }
        }
        if (!leader) this.transport.send(rd.messages);
        for (const e of rd.committedEntries) this.applyEntry(e);
        for (const rs of rd.readStates) this.onReadState(rs);
        this.node.advance();
        this.releaseReads();
        this.maybeSnapshot();
        this.maybeCompact();
      }
    } catch (e) {
      // The disk failed under an acknowledged-write promise: like etcd, stop rather than guess.
      log.fatal(`cannot continue: ${(e as Error).message}`);
      process.exit(1);
    } finally {
      this.running = false;
    }
    if (this.node.hasReady()) this.kick();
  }

  private onSoftState(ss: SoftState): void {
    const before = this.soft;
    this.soft = ss;
    if (ss.lead !== before.lead) {
      this.leaderSince = new Date();
      if (ss.lead === "") log.info(`raft: ${this.id} lost leader ${before.lead} at term ${this.node.status().term}`);
      else log.info(`raft: ${this.id} elected leader ${ss.lead} at term ${this.node.status().term}`);
    }
    if (ss.lead !== "") this.publish();
  }

  private async installSnapshot(s: Snapshot): Promise<void> {
    log.info(`applying snapshot at index ${s.index} (${s.data.byteLength} bytes)`);
    await this.snapshotter.save({ index: s.index, term: s.term, data: s.data });
    await this.wal.saveSnapshot({ index: s.index, term: s.term });
    this.storage.applySnapshot({ ...s, data: new Uint8Array(0) });
    const { store, cluster } = decodeSnapshot(s.data);
    this.store.recover(store);
    this.cluster = cluster;
    this.appliedIndex = this.snapshotIndex = this.lastCompact = s.index;
    this.transport.setPeers(this.cluster.list());
    log.info(`applied snapshot at index ${s.index} (etcd index ${this.store.index})`);
  }

  private applyEntry(e: Entry): void {
    if (e.index <= this.appliedIndex) return;
    this.appliedIndex = e.index;
    if (e.type === 1) {
      const { cc, data } = decodeConfChange(e.data);
      const p = data.length > 0 ? (JSON.parse(decoder.decode(data)) as Proposal) : null;
      // Raft's bootstrap entries carry only an ID; the member's URLs were in the initial cluster.
      const conf: ConfChange | undefined =
        p && "conf" in p ? p.conf : bootstrapAdd(cc.nodeId, this.meta.members);
      this.node.applyConfChange(cc);
      if (conf) this.applyConf(conf);
      if (p) this.settle(p.id, null, null);
      return;
    }
    if (e.data.length === 0) return; // a new leader's empty entry
    const p = JSON.parse(decoder.decode(e.data)) as Proposal;
    if ("conf" in p) {
      this.applyConf(p.conf);
      this.settle(p.id, null, null);
      return;
    }
    const cmd = p.cmd;
    if (cmd.op === "sync") {
      this.store.deleteExpired(cmd.time);
      this.settle(p.id, null, null);
      return;
    }
    let ev: StoreEvent | null = null;
    let err: unknown = null;
    try {
      ev = this.store.apply(cmd);
    } catch (x) {
      err = x;
    }
    this.settle(p.id, ev, err);
  }

  private settle(id: string, ev: StoreEvent | null, err: unknown): void {
    const w = this.waiters.get(id);
    if (!w) return;
    this.waiters.delete(id);
    if (err) w.reject(err);
    else w.resolve(ev);
  }

  private applyConf(conf: ConfChange): void {
    this.cluster.apply(conf);
    this.transport.setPeers(this.cluster.list());
    if (conf.type === "add") log.info(`added member ${conf.member.id} ${conf.member.peerURLs.join(",")} to cluster ${this.clusterId}`);
    if (conf.type === "remove") {
      log.info(`removed member ${conf.id} from cluster ${this.clusterId}`);
      if (conf.id === this.id) this.removed();
    }
  }

  private removed(): void {
    if (this.stopped) return;
    log.warn("the member has been permanently removed from the cluster; shutting down");
    this.removedSignal.resolve();
  }

  private publishing = false;

  /**
   * Once a leader is known, a member publishes its name and client URLs through the log if the
   * record differs (etcd's attributes write); until that is applied it is not ready (/health).
   */
  private publish(): void {
    // Once stopped, a proposal fails at once: retrying would loop on microtasks alone, starving
    // the event loop so that the stop (a removed member's exit) never finishes. A removed member
    // has no record left to publish to.
    if (this.stopped || this.cluster.isRemoved(this.id) || this.published || this.publishing) return;
    this.publishing = true;
    const clientURLs = this.cfg.advertiseClientUrls;
    this.changeMembership({ type: "attributes", id: this.id, name: this.cfg.name, clientURLs })
      .catch((e) => log.warn(`publishing member attributes failed: ${(e as Error).message}`))
      .finally(() => {
        this.publishing = false;
        if (!this.published && this.leaderId) this.publish();
      });
  }

  /** Whether the cluster's record of this member carries its current name and client URLs. */
  get published(): boolean {
    const me = this.cluster.get(this.id);
    return me !== undefined && me.name === this.cfg.name && me.clientURLs.join(",") === this.cfg.advertiseClientUrls.join(",");
  }

  /** Only the leader expires keys, through a replicated entry carrying its clock (spec §1.9). */
  private maybeExpire(): void {
    if (this.soft.state !== "StateLeader" || this.expiring || this.stopped) return;
    const next = this.store.nextExpiry();
    const now = Date.now();
    if (next === null || next > now) return;
    this.expiring = true;
    this.submit({ cmd: { op: "sync", time: now } })
      .catch((e) => log.warn(`expiry sync failed: ${(e as Error).message}`))
      .finally(() => {
        this.expiring = false;
      });
  }

  /** Membership on the first line, then the store's lines. */
  private *snapshotChunks(): Generator<string | Uint8Array> {
    yield `${JSON.stringify(this.cluster.toJSON())}\n`;
    yield* this.store.snapshotChunks();
  }

  /** The whole snapshot in one buffer, for a follower that needs it. */
  snapshotData(): Uint8Array {
    // Each store piece is a view into a reused buffer: copy it before taking the next.
    const pieces: Uint8Array[] = [];
    for (const p of this.snapshotChunks()) pieces.push(typeof p === "string" ? encoder.encode(p) : p.slice());
    const out = new Uint8Array(pieces.reduce((n, p) => n + p.length, 0));
    let off = 0;
    for (const p of pieces) {
      out.set(p, off);
      off += p.length;
    }
    return out;
  }

  private maybeSnapshot(): void {
    if (this.snapshotting || this.appliedIndex - this.snapshotIndex < this.cfg.snapshotCount) return;
    this.snapshotting = true;
    const index = this.appliedIndex;
    const term = this.storage.term(index);
    // saveChunks takes every piece before it returns: the snapshot is of this applied index.
    const saved = this.snapshotter.saveChunks({ index, term, chunks: this.snapshotChunks() });
    void (async () => {
      try {
        await saved;
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

  /** Keeps the in-memory log short: a follower further behind gets a snapshot made on demand. */
  private maybeCompact(): void {
    if (this.appliedIndex - this.lastCompact < COMPACT_EVERY) return;
    const keep = this.cluster.size > 1 ? CATCH_UP_ENTRIES : 0;
    const to = Math.min(this.appliedIndex - keep, this.storage.lastIndex());
    if (to < this.storage.firstIndex()) return;
    this.storage.compact(to);
    this.lastCompact = this.appliedIndex;
  }

  /** Whether member `id` is this one or a peer connected since `cutoff` at the latest. */
  connectedSince(id: string, cutoff: number): boolean {
    if (id === this.id) return true;
    const since = this.transport.activeSince(id);
    return since !== null && since <= cutoff;
  }

  /** Graceful stop: a leader hands leadership to a caught-up peer first (etcd's Stop). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    if (this.soft.state === "StateLeader" && this.cluster.size > 1) await this.transferLeadership();
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    this.transport.stop();
    while (this.running || this.snapshotting) await Bun.sleep(5);
    for (const w of this.waiters.values()) w.reject(stoppedError());
    for (const r of [...this.readQueue, ...(this.readInFlight?.waiters ?? []), ...this.readsAwaitingApply.flatMap((r) => r.waiters)])
      r.reject(stoppedError());
    await this.wal.close();
  }

  private async transferLeadership(): Promise<void> {
    const progress = this.node.status().progress;
    const target = Object.entries(progress)
      .filter(([id]) => id !== this.id && this.transport.activeSince(id) !== null)
      .sort((a, b) => b[1].match - a[1].match)[0]?.[0];
    if (!target) return;
    log.info(`transferring leadership to ${target}`);
    this.node.transferLeadership(target);
    this.kick();
    const deadline = Date.now() + this.cfg.electionMs * 2;
    while (Date.now() < deadline && this.soft.lead === this.id) await Bun.sleep(this.cfg.heartbeatMs);
    if (this.soft.lead !== this.id) log.info(`leadership transferred to ${this.soft.lead}`);
  }
}

function toWalHardState(hs: HardState): WalHardState {
  return { term: hs.term, vote: hs.vote, commit: hs.commit };
}

function bootstrapAdd(id: string, members: Member[]): ConfChange | undefined {
  const m = members.find((x) => x.id === id);
  return m ? { type: "add", member: { ...m, name: "", clientURLs: [] } } : undefined;
}

/** Membership on the first line, the store after it (JSON has no raw newlines). */
function decodeSnapshotLines(lines: Iterator<string>): { store: Store; cluster: Cluster } {
  const first = lines.next();
  if (first.done) throw new Error("snapshot: empty");
  const rest: Iterable<string> = { [Symbol.iterator]: () => lines };
  return { cluster: Cluster.from(JSON.parse(first.value) as ClusterState), store: Store.fromSnapshotLines(rest) };
}

function decodeSnapshot(data: Uint8Array): { store: Store; cluster: Cluster } {
  return decodeSnapshotLines(decoder.decode(data).split("\n")[Symbol.iterator]());
}

/** A new member's identity: founding members derive everything; a joining one asks its peers. */
async function newMetadata(cfg: ServerConfig): Promise<WalMetadata> {
  const id = memberId(cfg.advertisePeerUrls, cfg.clusterToken);
  const initial = [...cfg.initialCluster].map(([name, urls]) => ({
    id: memberId(urls, cfg.clusterToken),
    name,
    peerURLs: urls,
    clientURLs: [],
  }));
  if (cfg.clusterState === "new") return { memberId: id, clusterId: clusterId(initial.map((m) => m.id)), members: initial };
  const peers = initial.filter((m) => m.id !== id).flatMap((m) => m.peerURLs);
  for (const url of peers) {
    try {
      const r = await fetch(`${url}/members`, { signal: AbortSignal.timeout(5000), ...peerFetchInit(cfg.peerTls) });
      const cid = r.headers.get("x-etcd-cluster-id");
      if (!r.ok || !cid) continue;
      const members = (await r.json()) as Member[];
      const me = members.find((m) => [...m.peerURLs].sort().join(",") === [...cfg.advertisePeerUrls].sort().join(","));
      if (!me) throw new Error(`this member (${cfg.advertisePeerUrls.join(",")}) is not in the cluster: add it with "member add" first`);
      return { memberId: me.id, clusterId: cid, members };
    } catch (e) {
      if ((e as Error).message.startsWith("this member")) throw e;
      log.warn(`could not get the cluster's members from ${url}: ${(e as Error).message}`);
    }
  }
  throw new Error("cannot fetch cluster info from peer urls: no peer of --initial-cluster answered");
}

// Deterministic simulation of a Raft cluster: N nodes running the real consensus core, a faulty
// network, disks that lose unsynced writes, crashes and restarts, snapshots, leadership transfers,
// membership changes and clients doing writes, compare-and-swaps and ReadIndex reads against a
// replicated register store. Everything, faults included, is drawn from one seeded PRNG, so a seed
// replays exactly. Safety invariants are checked after every input to every node; at the end the
// client history must be linearizable and, after the faults stop, the cluster must make progress.
import { decodeConfChange } from "../../internal/raft/confchange.ts";
import { RawNode } from "../../internal/raft/rawnode.ts";
import type { MemoryStorage } from "../../internal/raft/storage.ts";
import { type Entry, ErrConfChangePending, ErrProposalDropped, type Message, type NodeId, type ReadState } from "../../internal/raft/types.ts";
import { SimDisk } from "./disk.ts";
import { Agenda } from "./events.ts";
import { Invariants, Violation } from "./invariants.ts";
import { KvStateMachine, encodeCommand } from "./kvsm.ts";
import { type HistoryOp, checkHistory, describeOp } from "./linearizability.ts";
import { type NetConfig, Network } from "./network.ts";
import { Prng } from "./prng.ts";

/** Known-wrong behaviours the simulator can inject, to prove its checks catch them. */
export interface Bugs {
  /** Leaders commit entries of earlier terms by counting replicas (the Figure 8 mistake). */
  commitPreviousTerm?: boolean;
  /** Nodes answer (acks, votes) without syncing what the Ready asked them to persist. */
  skipSync?: boolean;
  /** Reads are served from the contacted node's state without ReadIndex (stale on a lagging node). */
  staleReads?: boolean;
}

export interface SimOptions {
  seed: number;
  /** Founding members; default: 3 or 5, from the seed. */
  nodes?: number;
  /** Time units with faults; a raft tick is about 10 units. */
  steps?: number;
  /** At most this many fault-free time units at the end, in which a new write must complete. */
  quiesce?: number;
  bugs?: Bugs;
  /** Receives every trace line as it happens. */
  onTrace?: (line: string) => void;
}

export interface SimStats {
  nodes: number;
  ops: number;
  completed: number;
  unknown: number;
  elections: number;
  maxTerm: number;
  commit: number;
  crashes: number;
  tornWrites: number;
  snapshots: number;
  snapshotsSent: number;
  partitions: number;
  transfers: number;
  confChanges: number;
  inconclusiveKeys: number;
}

export interface SimResult {
  seed: number;
  ok: boolean;
  /** The command that replays this run. */
  reproduce: string;
  failure?: string;
  /** The last trace lines before the end (or the failure). */
  trace: string[];
  stats: SimStats;
}

interface ClientOp extends HistoryOp {
  deadline: number;
  done: boolean;
}

interface Client {
  id: number;
  op: ClientOp | null;
  /** Last value this client saw per key: what its next cas expects. */
  seen: Map<string, number | null>;
}

class SimNode {
  rn: RawNode | null = null;
  storage: MemoryStorage | null = null;
  sm = new KvStateMachine();
  readonly disk = new SimDisk();
  incarnation = 0;
  tickEvery = 10;
  nextTick = 0;
  /** Client requests this process accepted, by command id / read ctx. */
  proposals = new Map<number, ClientOp>();
  reads = new Map<string, ClientOp>();
  readQueue: ReadState[] = [];
  /** Taken out of the cluster: stopped for good once its removal is applied. */
  removed = false;

  constructor(
    readonly id: NodeId,
    readonly founding: boolean,
  ) {}

  get key(): string {
    return `${this.id}#${this.incarnation}`;
  }
}

const TRACE_KEEP = 80;
const KEYS = ["x", "y", "z"];
const TICK = 10;
const OP_TIMEOUT = 800;
/** Time units the simulation goes on after the cluster proved it recovered. */
const SETTLE = 300;

export class Simulation {
  private readonly rng: Prng;
  private readonly faultRng: Prng;
  private readonly clientRng: Prng;
  private readonly raftRng: Prng;
  private readonly agenda = new Agenda();
  private readonly net: Network;
  private readonly inv = new Invariants();
  private readonly nodes = new Map<NodeId, SimNode>();
  private readonly founders: NodeId[];
  private readonly clients: Client[] = [];
  private readonly history: ClientOp[] = [];
  private readonly trace: string[] = [];
  private readonly bugs: Bugs;
  private readonly steps: number;
  private readonly quiesce: number;
  private now = 0;
  private seq = 0;
  private opSeq = 0;
  private nextNodeNum: number;
  private quiescing = false;
  private quiesceStart = Infinity;
  /** When the first write invoked after the faults stopped completed. */
  private recoveredAt = Infinity;
  private readonly raftCfg: { preVote: boolean; checkQuorum: boolean; maxSizePerMsg: number; maxInflightMsgs: number };
  /** Per-seed fault rates per time unit. */
  private readonly rates: {
    crash: number;
    partition: number;
    snapshot: number;
    transfer: number;
    conf: number;
    campaign: number;
    torn: number;
    leaderChaos: number;
  };
  private readonly parallelLeaderSend: boolean;
  readonly stats: SimStats;

  constructor(private readonly opts: SimOptions) {
    this.rng = new Prng(opts.seed);
    this.faultRng = this.rng.fork();
    this.clientRng = this.rng.fork();
    this.raftRng = this.rng.fork();
    const netRng = this.rng.fork();
    const n = opts.nodes ?? this.rng.pick([3, 3, 5]);
    this.steps = opts.steps ?? 6000;
    this.quiesce = opts.quiesce ?? 2500;
    this.bugs = opts.bugs ?? {};
    const netCfg: NetConfig = {
      drop: this.rng.pick([0, 0, 0.01, 0.05, 0.15]),
      duplicate: this.rng.pick([0, 0.01, 0.05]),
      maxDelay: this.rng.pick([2, 4, 8, 16]),
      spike: this.rng.pick([0, 0.005, 0.02]),
    };
    this.net = new Network(netRng, netCfg, this.agenda, (m) => this.deliver(m));
    this.raftCfg = {
      preVote: this.rng.chance(0.8),
      checkQuorum: this.rng.chance(0.8),
      maxSizePerMsg: this.rng.pick([64, 300, 4096, 1 << 20]),
      maxInflightMsgs: this.rng.pick([1, 2, 4, 256]),
    };
    const intensity = this.rng.pick([0.5, 1, 2]);
    this.rates = {
      crash: 0.0008 * intensity,
      partition: 0.0015 * intensity,
      snapshot: 0.004,
      transfer: 0.0008,
      conf: 0.0008,
      campaign: 0.0004,
      torn: 0.003,
      leaderChaos: this.rng.pick([0, 0, 0.15, 0.4]),
    };
    this.parallelLeaderSend = this.rng.chance(0.5);
    this.founders = Array.from({ length: n }, (_, i) => `n${i + 1}`);
    this.nextNodeNum = n + 1;
    this.stats = {
      nodes: n,
      ops: 0,
      completed: 0,
      unknown: 0,
      elections: 0,
      maxTerm: 0,
      commit: 0,
      crashes: 0,
      tornWrites: 0,
      snapshots: 0,
      snapshotsSent: 0,
      partitions: 0,
      transfers: 0,
      confChanges: 0,
      inconclusiveKeys: 0,
    };
    for (let c = 0; c < 4; c++) this.clients.push({ id: c, op: null, seen: new Map() });
    this.log(
      `seed ${opts.seed}: ${n} nodes, net ${JSON.stringify(netCfg)}, raft ${JSON.stringify(this.raftCfg)}, ` +
        `intensity ${intensity}, leader sends before persisting: ${this.parallelLeaderSend}`,
    );
  }

  run(): SimResult {
    try {
      for (const id of this.founders) {
        const node = new SimNode(id, true);
        this.nodes.set(id, node);
        this.start(node);
      }
      const end = this.steps + this.quiesce;
      for (this.now = 1; this.now <= end && this.now <= this.recoveredAt + SETTLE; this.now++) {
        if (this.now === this.steps) this.startQuiesce();
        this.step();
        if (this.now % 250 === 0) this.inv.checkLogsMatch(this.liveRafts());
      }
      this.inv.checkLogsMatch(this.liveRafts());
      if (this.recoveredAt === Infinity) return this.result(`liveness: no write completed in ${this.quiesce} fault-free time units`);
      for (const op of this.history) {
        if (op.ret === Infinity) this.stats.unknown++;
        else this.stats.completed++;
      }
      // Reads that never answered tell nothing; the rest (writes of unknown outcome included) must linearize.
      const lin = checkHistory(this.history.filter((op) => op.kind !== "read" || op.ret !== Infinity));
      if (!lin.ok) {
        const lines = lin.history.slice(-25).map(describeOp);
        return this.result(
          `linearizability: key "${lin.key}" is not linearizable; the last operations when it stopped being so:\n    ${lines.join("\n    ")}`,
        );
      }
      this.stats.inconclusiveKeys = lin.inconclusive.length;
      return this.result();
    } catch (e) {
      if (e instanceof Violation) return this.result(`t=${this.now} ${e.message}`);
      const err = e as Error;
      return this.result(`t=${this.now} exception: ${err.stack ?? err.message}`);
    }
  }

  private result(failure?: string): SimResult {
    this.stats.commit = this.inv.highestCommitted;
    const o = this.opts;
    const env = [
      `SEED=${o.seed}`,
      ...(o.steps !== undefined ? [`SIM_STEPS=${o.steps}`] : []),
      ...(o.nodes !== undefined ? [`SIM_NODES=${o.nodes}`] : []),
      ...Object.entries(this.bugs).flatMap(([bug, on]) => (on ? [`SIM_BUG=${bug}`] : [])),
    ];
    const r: SimResult = {
      seed: o.seed,
      ok: failure === undefined,
      reproduce: `${env.join(" ")} npm run sim`,
      trace: this.trace.slice(),
      stats: this.stats,
    };
    if (failure !== undefined) r.failure = failure;
    return r;
  }

  private log(line: string): void {
    const l = `t=${this.now} ${line}`;
    this.trace.push(l);
    if (this.trace.length > TRACE_KEEP) this.trace.shift();
    this.opts.onTrace?.(l);
  }

  private liveRafts() {
    return [...this.nodes.values()].flatMap((n) => (n.rn ? [n.rn.raft] : []));
  }

  private observe(node: SimNode): void {
    const r = node.rn!.raft;
    if (r.state === "StateLeader" && this.inv.leaderOf(r.term) !== r.id) {
      this.stats.elections++;
      this.log(`${r.id} leads term ${r.term} (last index ${r.log.lastIndex()}, commit ${r.log.committed})`);
      // New leaders are where the subtle cases are (entries of several terms, half-replicated
      // logs): sometimes cut one down before it has replicated much.
      if (!this.quiescing && this.faultRng.chance(this.rates.leaderChaos)) {
        const incarnation = node.incarnation;
        const isolate = this.faultRng.chance(0.5);
        this.agenda.at(this.now + this.faultRng.range(0, 20), () => {
          if (node.incarnation !== incarnation || this.quiescing) return;
          if (!isolate) {
            this.crash(node, "new leader cut down");
            return;
          }
          for (const other of this.nodes.keys()) if (other !== node.id) this.blockBoth(node.id, other);
          this.stats.partitions++;
          const until = this.now + this.faultRng.range(50, 600);
          this.log(`partition: new leader ${node.id} isolated until t=${until}`);
          this.agenda.at(until, () => this.heal());
        });
      }
    }
    if (r.term > this.stats.maxTerm) this.stats.maxTerm = r.term;
    this.inv.observe(node.key, r);
  }

  // ---- the loop ----

  private step(): void {
    this.agenda.runDue(this.now);
    for (const node of this.nodes.values()) {
      if (!node.rn || this.now < node.nextTick) continue;
      node.nextTick += node.tickEvery;
      node.rn.tick();
      this.observe(node);
    }
    this.clientsAct();
    if (!this.quiescing) this.injectFaults();
    for (const node of this.nodes.values()) {
      if (node.rn && this.faultRng.chance(this.rates.snapshot)) this.takeSnapshot(node);
    }
    for (const node of this.nodes.values()) {
      for (let i = 0; i < 8 && node.rn?.hasReady(); i++) this.handleReady(node);
    }
  }

  private start(node: SimNode): void {
    if (node.rn || node.removed) return;
    const storage = node.disk.load();
    const snap = node.disk.snapshot;
    node.sm = snap.index > 0 ? KvStateMachine.restore(snap.data) : new KvStateMachine();
    const random = this.raftRng.fork();
    const rn = new RawNode({
      id: node.id,
      ...(node.founding ? { peers: this.founders } : {}),
      storage,
      random: () => random.next(),
      applied: snap.index,
      ...this.raftCfg,
    });
    if (this.bugs.commitPreviousTerm) {
      const log = rn.raft.log;
      log.maybeCommit = (maxIndex: number) => {
        if (maxIndex <= log.committed) return false;
        log.commitTo(maxIndex);
        return true;
      };
    }
    node.rn = rn;
    node.storage = storage;
    node.tickEvery = TICK + this.raftRng.range(-1, 1);
    node.nextTick = this.now + this.raftRng.range(1, node.tickEvery);
    this.log(`${node.id} starts (incarnation ${node.incarnation}, term ${rn.raft.term}, last index ${rn.raft.log.lastIndex()}, snapshot ${snap.index})`);
    this.observe(node);
  }

  private crash(node: SimNode, why: string): void {
    if (!node.rn) return;
    const lost = node.disk.crash(this.faultRng);
    this.inv.down(node.id);
    node.rn = null;
    node.storage = null;
    node.proposals.clear();
    node.reads.clear();
    node.readQueue = [];
    node.incarnation++;
    this.stats.crashes++;
    this.log(`${node.id} crashes (${why}; ${lost} unsynced records lost)`);
    if (!node.removed) this.agenda.at(this.now + this.faultRng.range(20, 800), () => this.start(node));
  }

  private deliver(m: Message): void {
    const node = this.nodes.get(m.to);
    if (!node?.rn) return;
    node.rn.step(m);
    this.observe(node);
    if (m.type === "MsgSnap") this.reportSnapshot(m.from, m.to, true);
  }

  private reportSnapshot(from: NodeId, to: NodeId, ok: boolean): void {
    const sender = this.nodes.get(from);
    if (!sender?.rn) return;
    sender.rn.reportSnapshot(to, ok);
    this.observe(sender);
  }

  private send(node: SimNode, msgs: Message[]): void {
    for (const m of msgs) {
      const outcome = this.net.send(m, this.now);
      if (m.type === "MsgSnap") {
        this.stats.snapshotsSent++;
        if (outcome !== "sent") {
          this.agenda.at(this.now + this.faultRng.range(10, 100), () => this.reportSnapshot(m.from, m.to, false));
        }
      }
      if (outcome === "blocked" && node.rn && this.faultRng.chance(0.3)) {
        node.rn.reportUnreachable(m.to);
        this.observe(node);
      }
    }
  }

  private handleReady(node: SimNode): void {
    const rn = node.rn!;
    const storage = node.storage!;
    const rd = rn.ready();
    if (rd.softState) this.log(`${node.id} is ${rd.softState.state} (lead ${rd.softState.lead || "none"}, term ${rn.raft.term})`);
    // etcd's leader writes its log in parallel with sending: its own entries count only once durable.
    const sendFirst = this.parallelLeaderSend && rn.raft.state === "StateLeader";
    if (sendFirst) this.send(node, rd.messages);

    node.disk.write(rd.snapshot, rd.entries, rd.hardState);
    if (rd.snapshot) storage.applySnapshot(rd.snapshot);
    storage.append(rd.entries);
    if (rd.hardState) storage.setHardState(rd.hardState);
    this.inv.onPersist(rn.raft, rd.entries);
    if (rd.mustSync && !this.bugs.skipSync) {
      if (this.faultRng.chance(this.rates.torn) && !this.quiescing) {
        this.stats.tornWrites++;
        this.crash(node, "torn write during fsync");
        return;
      }
      node.disk.sync();
    }
    if (!sendFirst) this.send(node, rd.messages);

    if (rd.snapshot) {
      node.sm = KvStateMachine.restore(rd.snapshot.data);
      this.inv.onRestore(node.id, rd.snapshot, node.sm.hash);
      this.log(`${node.id} restored snapshot at ${rd.snapshot.index} (voters ${rd.snapshot.voters.join(",")})`);
    }
    for (const e of rd.committedEntries) {
      this.apply(node, e);
      if (!node.rn) return;
    }
    for (const rs of rd.readStates) if (node.reads.has(rs.ctx)) node.readQueue.push(rs);
    this.serveReads(node);
    rn.advance();
  }

  private apply(node: SimNode, e: Entry): void {
    const rn = node.rn!;
    const res = node.sm.apply(e);
    this.inv.onApply(node.id, e, node.sm.hash);
    if (e.type === 1) {
      const { cc } = decodeConfChange(e.data);
      const voters = rn.applyConfChange(cc);
      this.observe(node);
      if (!this.nodes.has(cc.nodeId) && cc.type === "add") {
        const joiner = new SimNode(cc.nodeId, false);
        this.nodes.set(cc.nodeId, joiner);
        this.log(`${node.id} applied add ${cc.nodeId} at ${e.index} (voters ${voters.join(",")}); starting it`);
        this.agenda.at(this.now + this.faultRng.range(0, 50), () => this.start(joiner));
      }
      const target = this.nodes.get(cc.nodeId);
      if (cc.type === "remove" && target && !target.removed) {
        target.removed = true;
        this.log(`${node.id} applied remove ${cc.nodeId} at ${e.index} (voters ${voters.join(",")})`);
        // The removed process lingers a while, as a real one would until the operator stops it.
        this.agenda.at(this.now + this.faultRng.range(0, 300), () => this.crash(target, "removed from the cluster"));
      }
      return;
    }
    if (!res) return;
    const op = node.proposals.get(res.id);
    if (!op) return;
    node.proposals.delete(res.id);
    if (op.kind === "cas") op.ok = res.ok;
    this.complete(op);
  }

  private serveReads(node: SimNode): void {
    if (node.readQueue.length === 0) return;
    const keep: ReadState[] = [];
    for (const rs of node.readQueue) {
      if (rs.index > node.sm.appliedIndex) {
        keep.push(rs);
        continue;
      }
      const op = node.reads.get(rs.ctx);
      node.reads.delete(rs.ctx);
      if (!op) continue;
      op.out = node.sm.get(op.key);
      this.complete(op);
    }
    node.readQueue = keep;
  }

  private complete(op: ClientOp): void {
    if (op.done) return;
    op.done = true;
    op.ret = ++this.seq;
    if (op.kind !== "read" && op.call > this.quiesceStart && this.recoveredAt === Infinity) this.recoveredAt = this.now;
    const client = this.clients[op.client]!;
    if (client.op === op) client.op = null;
    if (op.kind === "read") client.seen.set(op.key, op.out ?? null);
    else if (op.kind === "write" || op.ok) client.seen.set(op.key, op.value!);
  }

  private takeSnapshot(node: SimNode): void {
    const rn = node.rn!;
    const storage = node.storage!;
    const applied = node.sm.appliedIndex;
    if (applied <= storage.snapshot().index) return;
    const snap = storage.createSnapshot(applied, [...rn.raft.prs.keys()], node.sm.snapshot());
    // Keep a few entries sometimes (etcd keeps 5000) so slightly lagging followers can do without.
    const compactIndex = applied - this.faultRng.int(4);
    if (compactIndex >= storage.firstIndex()) storage.compact(compactIndex);
    node.disk.saveSnapshot(snap, compactIndex);
    this.stats.snapshots++;
  }

  // ---- clients ----

  private leaderHint(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const n of this.nodes.values()) {
      const r = n.rn?.raft;
      if (r?.state === "StateLeader" && (!best || r.term > best.rn!.raft.term)) best = n;
    }
    return best;
  }

  private clientsAct(): void {
    const rng = this.clientRng;
    for (const c of this.clients) {
      if (c.op && this.now >= c.op.deadline) {
        // Gave up: a write's effect is now unknown, forever (ret stays Infinity).
        c.op.done = true;
        c.op = null;
      }
      if (c.op || !rng.chance(0.02)) continue;
      const key = rng.pick(KEYS);
      const r = rng.next();
      const kind = r < 0.4 ? "write" : r < 0.6 ? "cas" : "read";
      const candidates = [...this.nodes.values()].filter((n) => !n.removed);
      const node = rng.chance(0.7) ? (this.leaderHint() ?? rng.pick(candidates)) : rng.pick(candidates);
      if (!node.rn) continue;
      const op: ClientOp = { id: ++this.opSeq, client: c.id, key, kind, call: 0, ret: Infinity, deadline: this.now + OP_TIMEOUT, done: false };
      if (kind === "read" && this.bugs.staleReads) {
        op.call = ++this.seq;
        this.history.push(op);
        this.stats.ops++;
        op.out = node.sm.get(key);
        this.complete(op);
        continue;
      }
      try {
        if (kind === "read") {
          node.rn.readIndex(String(op.id));
          node.reads.set(String(op.id), op);
        } else {
          op.value = op.id;
          if (kind === "cas") op.expect = rng.chance(0.8) ? (c.seen.get(key) ?? null) : rng.pick([null, rng.int(this.opSeq)]);
          const cmd =
            kind === "write"
              ? ({ id: op.id, kind, key, value: op.id } as const)
              : ({ id: op.id, kind, key, expect: op.expect ?? null, value: op.id } as const);
          node.rn.propose(encodeCommand(cmd));
          node.proposals.set(op.id, op);
        }
      } catch (e) {
        // Refused on the spot: it never entered any log, so it is not part of the history.
        if (e instanceof ErrProposalDropped) continue;
        throw e;
      } finally {
        this.observe(node);
      }
      op.call = ++this.seq;
      c.op = op;
      this.history.push(op);
      this.stats.ops++;
    }
  }

  // ---- faults ----

  private injectFaults(): void {
    const rng = this.faultRng;
    const members = [...this.nodes.values()].filter((n) => !n.removed);
    if (rng.chance(this.rates.crash)) {
      const up = members.filter((n) => n.rn);
      if (up.length > 0) this.crash(rng.pick(up), "crash");
    }
    if (!this.net.partitioned && rng.chance(this.rates.partition)) this.partition(members.map((n) => n.id));
    if (rng.chance(this.rates.campaign)) {
      const up = members.filter((n) => n.rn);
      if (up.length > 0) {
        const n = rng.pick(up);
        n.rn!.campaign();
        this.observe(n);
      }
    }
    const leader = this.leaderHint();
    if (!leader) return;
    const voters = [...leader.rn!.raft.prs.keys()];
    if (rng.chance(this.rates.transfer)) {
      const others = voters.filter((v) => v !== leader.id);
      if (others.length > 0) {
        const to = rng.pick(others);
        this.stats.transfers++;
        this.log(`${leader.id} asked to transfer leadership to ${to}`);
        leader.rn!.transferLeadership(to);
        this.observe(leader);
      }
    }
    if (rng.chance(this.rates.conf)) this.changeMembership(leader, voters);
  }

  private changeMembership(leader: SimNode, voters: NodeId[]): void {
    const rng = this.faultRng;
    const add = voters.length <= 3 || (voters.length < 5 && rng.chance(0.5));
    const nodeId = add ? `n${this.nextNodeNum}` : rng.pick(voters);
    try {
      leader.rn!.proposeConfChange({ type: add ? "add" : "remove", nodeId }, new TextEncoder().encode(`admin ${this.now}`));
    } catch (e) {
      if (e instanceof ErrConfChangePending || e instanceof ErrProposalDropped) return;
      throw e;
    } finally {
      this.observe(leader);
    }
    if (add) this.nextNodeNum++;
    this.stats.confChanges++;
    this.log(`${leader.id} proposes ${add ? "add" : "remove"} ${nodeId}`);
  }

  private partition(ids: NodeId[]): void {
    const rng = this.faultRng;
    if (ids.length < 2) return;
    const shuffled = ids.slice();
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
    }
    const kind = rng.int(3);
    let desc: string;
    if (kind === 0) {
      const cut = rng.range(1, shuffled.length - 1);
      const a = shuffled.slice(0, cut);
      const b = shuffled.slice(cut);
      for (const x of a) for (const y of b) this.blockBoth(x, y);
      desc = `${a.join(",")} | ${b.join(",")}`;
    } else if (kind === 1) {
      const x = shuffled[0]!;
      const outbound = rng.chance(0.5);
      for (const y of shuffled.slice(1)) outbound ? this.net.block(x, y) : this.net.block(y, x);
      desc = outbound ? `${x} cannot send` : `${x} cannot receive`;
    } else {
      // A bridge: two sides that only one node can talk to.
      const bridge = shuffled[0]!;
      const rest = shuffled.slice(1);
      const cut = Math.max(1, rng.int(rest.length));
      for (const x of rest.slice(0, cut)) for (const y of rest.slice(cut)) this.blockBoth(x, y);
      desc = `${rest.slice(0, cut).join(",")} | ${rest.slice(cut).join(",")} bridged by ${bridge}`;
    }
    this.stats.partitions++;
    const until = this.now + rng.range(50, 1500);
    this.log(`partition ${desc} until t=${until}`);
    this.agenda.at(until, () => this.heal());
  }

  private heal(): void {
    if (!this.net.partitioned) return;
    this.net.heal();
    this.log("partition healed");
  }

  private blockBoth(a: NodeId, b: NodeId): void {
    this.net.block(a, b);
    this.net.block(b, a);
  }

  private startQuiesce(): void {
    this.quiescing = true;
    this.quiesceStart = this.seq;
    this.net.heal();
    this.net.cfg = { drop: 0, duplicate: 0, maxDelay: this.net.cfg.maxDelay, spike: 0 };
    this.log("faults stop: network healed, every member restarts");
    for (const n of this.nodes.values()) if (!n.rn && !n.removed) this.start(n);
  }
}

export function runSimulation(opts: SimOptions): SimResult {
  return new Simulation(opts).run();
}

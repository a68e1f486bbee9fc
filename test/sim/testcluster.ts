// A small synchronous cluster for focused Raft tests: every node's Ready is persisted to its
// MemoryStorage, applied and advanced, and messages are delivered at once (unless cut or filtered),
// until nothing moves. Tests steer it with ticks, campaigns, partitions and message filters.
import { decodeConfChange } from "../../internal/raft/confchange.ts";
import type { Raft } from "../../internal/raft/raft.ts";
import { RawNode } from "../../internal/raft/rawnode.ts";
import { MemoryStorage } from "../../internal/raft/storage.ts";
import type { Entry, Message, NodeId, ReadState, Snapshot } from "../../internal/raft/types.ts";
import { Prng } from "./prng.ts";

export interface ClusterOptions {
  preVote?: boolean;
  checkQuorum?: boolean;
  electionTick?: number;
  maxSizePerMsg?: number;
  maxInflightMsgs?: number;
  /** Storages to start from (default: empty, bootstrapped from the member list). */
  storages?: Record<NodeId, MemoryStorage>;
  /** Send every message through JSON (Uint8Array as base64), as a transport would. */
  json?: boolean;
}

export interface TestNode {
  id: NodeId;
  rn: RawNode;
  storage: MemoryStorage;
  applied: Entry[];
  readStates: ReadState[];
}

const encoder = new TextEncoder();
export const bytes = (s: string): Uint8Array => encoder.encode(s);

/**
 * A storage holding a snapshot at index 1 (term 1, with the voters), then entries of the given
 * terms at indexes 2, 3, ...; the hard state's term is `term` or the last entry's.
 */
export function storageWith(voters: NodeId[], terms: number[], term = Math.max(1, ...terms)): MemoryStorage {
  const s = new MemoryStorage();
  s.applySnapshot({ index: 1, term: 1, voters, data: new Uint8Array(0) });
  s.append(terms.map((t, i) => ({ term: t, index: i + 2, type: 0, data: bytes(`e${i + 2}t${t}`) })));
  s.setHardState({ term, vote: "", commit: 1 });
  return s;
}

function jsonRoundTrip(m: Message): Message {
  const text = JSON.stringify(m, (_k, v: unknown) => (v instanceof Uint8Array ? { $bytes: Buffer.from(v).toString("base64") } : v));
  return JSON.parse(text, (_k, v: unknown) => {
    if (v && typeof v === "object" && "$bytes" in v) return new Uint8Array(Buffer.from((v as { $bytes: string }).$bytes, "base64"));
    return v;
  }) as Message;
}

export class TestCluster {
  readonly nodes = new Map<NodeId, TestNode>();
  /** Every message sent, delivered or not, in order; tests clear it as they like. */
  sent: Message[] = [];
  /** Return false to drop a message. */
  filter: ((m: Message) => boolean) | null = null;
  private readonly cut = new Set<string>();
  private readonly rng = new Prng(7);

  constructor(
    readonly ids: NodeId[],
    private readonly opts: ClusterOptions = {},
  ) {
    for (const id of ids) this.start(id, opts.storages?.[id], ids);
    // Apply the bootstrap configuration: nobody campaigns with conf changes unapplied.
    this.stabilize();
  }

  /** Starts (or restarts, from its storage) a node; without peers it joins an existing cluster. */
  start(id: NodeId, storage = new MemoryStorage(), peers?: NodeId[]): TestNode {
    const random = this.rng.fork();
    const snap = storage.snapshot();
    const rn = new RawNode({
      id,
      ...(peers ? { peers } : {}),
      storage,
      random: () => random.next(),
      applied: snap.index,
      ...(this.opts.preVote !== undefined ? { preVote: this.opts.preVote } : {}),
      ...(this.opts.checkQuorum !== undefined ? { checkQuorum: this.opts.checkQuorum } : {}),
      ...(this.opts.electionTick !== undefined ? { electionTick: this.opts.electionTick } : {}),
      ...(this.opts.maxSizePerMsg !== undefined ? { maxSizePerMsg: this.opts.maxSizePerMsg } : {}),
      ...(this.opts.maxInflightMsgs !== undefined ? { maxInflightMsgs: this.opts.maxInflightMsgs } : {}),
    });
    const node: TestNode = { id, rn, storage, applied: [], readStates: [] };
    this.nodes.set(id, node);
    return node;
  }

  stop(id: NodeId): void {
    this.nodes.delete(id);
  }

  node(id: NodeId): TestNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  raft(id: NodeId): Raft {
    return this.node(id).rn.raft;
  }

  isolate(id: NodeId): void {
    for (const other of this.ids) {
      if (other === id) continue;
      this.cut.add(`${id}>${other}`);
      this.cut.add(`${other}>${id}`);
    }
  }

  heal(): void {
    this.cut.clear();
  }

  /** The leader of the highest term among running nodes. */
  leader(): NodeId | undefined {
    let best: Raft | undefined;
    for (const n of this.nodes.values()) {
      const r = n.rn.raft;
      if (r.state === "StateLeader" && (!best || r.term > best.term)) best = r;
    }
    return best?.id;
  }

  /** Ticks the given nodes (default all) n times, letting the cluster settle after each tick. */
  tick(n = 1, ids?: NodeId[]): void {
    for (let i = 0; i < n; i++) {
      for (const id of ids ?? [...this.nodes.keys()]) this.nodes.get(id)?.rn.tick();
      this.stabilize();
    }
  }

  campaign(id: NodeId): void {
    this.node(id).rn.campaign();
    this.stabilize();
  }

  /** Elects `id`: campaigns and settles. */
  elect(id: NodeId): void {
    this.campaign(id);
    if (this.raft(id).state !== "StateLeader") throw new Error(`${id} did not win (state ${this.raft(id).state})`);
  }

  stabilize(maxRounds = 10_000): void {
    for (let round = 0; round < maxRounds; round++) {
      const out: Message[] = [];
      for (const node of [...this.nodes.values()]) {
        while (this.nodes.get(node.id) === node && node.rn.hasReady()) out.push(...this.handleReady(node));
      }
      if (out.length === 0) return;
      for (const m of out) this.deliver(m);
    }
    throw new Error("cluster did not settle");
  }

  private handleReady(node: TestNode): Message[] {
    const rd = node.rn.ready();
    if (rd.snapshot) node.storage.applySnapshot(rd.snapshot);
    node.storage.append(rd.entries);
    if (rd.hardState) node.storage.setHardState(rd.hardState);
    for (const e of rd.committedEntries) {
      node.applied.push(e);
      if (e.type === 1) node.rn.applyConfChange(decodeConfChange(e.data).cc);
    }
    node.readStates.push(...rd.readStates);
    node.rn.advance();
    return rd.messages;
  }

  /** Sends messages a test took out of a Ready itself. */
  transmit(msgs: Message[]): void {
    for (const m of msgs) this.deliver(m);
    this.stabilize();
  }

  private deliver(m: Message): void {
    this.sent.push(m);
    if (this.cut.has(`${m.from}>${m.to}`)) return;
    if (this.filter && !this.filter(m)) return;
    const target = this.nodes.get(m.to);
    if (!target) return;
    target.rn.step(this.opts.json ? jsonRoundTrip(m) : m);
    if (m.type === "MsgSnap") this.nodes.get(m.from)?.rn.reportSnapshot(m.to, true);
  }

  /** Takes a snapshot of `id` at its applied index and compacts its log up to there. */
  snapshot(id: NodeId, data = bytes(`state of ${id}`)): Snapshot {
    const n = this.node(id);
    const applied = n.rn.raft.log.applied;
    const s = n.storage.createSnapshot(applied, [...n.rn.raft.prs.keys()], data);
    n.storage.compact(applied);
    return s;
  }
}

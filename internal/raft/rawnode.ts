// The application's handle on a Raft node (etcd's RawNode). The loop around it:
//
//   node.tick() every heartbeat interval; node.step(msg) for every message from a peer;
//   while (node.hasReady()) {
//     const rd = node.ready();
//     persist rd.snapshot, rd.entries and rd.hardState (fsync when rd.mustSync), then add them to
//       the Storage the node reads from;
//     send rd.messages (a leader may send them while it persists: its own entries count towards
//       commit, but no message carrying a later commit index is produced before advance());
//     apply rd.snapshot's data, then rd.committedEntries in order (type 1: decodeConfChange and
//       applyConfChange; an empty type-0 entry is the new leader's no-op);
//     answer rd.readStates whose index has been applied;
//     node.advance();
//   }
//
// step/tick/propose may be called while a Ready is out; ready() may not until advance().
import { encodeConfChange } from "./confchange.ts";
import { type Config, Raft, type Status } from "./raft.ts";
import {
  type ConfChange,
  type Entry,
  ErrConfChangePending,
  ErrProposalDropped,
  ErrStepLocalMsg,
  type HardState,
  type Message,
  type NodeId,
  None,
  type ReadState,
  type Snapshot,
  type SoftState,
  localMessageTypes,
  newMessage,
} from "./types.ts";

export interface Ready {
  /** Present when the leader or our role changed. */
  softState?: SoftState;
  /** Present when it changed; persist it with the entries. */
  hardState?: HardState;
  /** To persist before sending messages (a follower must not acknowledge what it could lose). */
  entries: Entry[];
  /** A snapshot from the leader to persist and apply: it replaces the whole log. */
  snapshot?: Snapshot;
  /** Committed entries to apply, in order; they were in this or an earlier Ready's entries. */
  committedEntries: Entry[];
  messages: Message[];
  readStates: ReadState[];
  /** Whether the writes must be fsynced (new entries, snapshot, or a changed term or vote). */
  mustSync: boolean;
}

const sameSoftState = (a: SoftState, b: SoftState) => a.lead === b.lead && a.state === b.state;
const sameHardState = (a: HardState, b: HardState) => a.term === b.term && a.vote === b.vote && a.commit === b.commit;
const isEmptyHardState = (h: HardState) => h.term === 0 && h.vote === None && h.commit === 0;

export class RawNode {
  readonly raft: Raft;
  private prevSoftState: SoftState;
  private prevHardState: HardState;
  private outstanding: Ready | null = null;

  constructor(cfg: Config) {
    this.raft = new Raft(cfg);
    this.prevSoftState = this.raft.softState();
    this.prevHardState = cfg.storage.initialState().hardState;
  }

  tick(): void {
    this.raft.tick();
  }

  /** Starts an election now (pre-vote first when enabled). */
  campaign(): void {
    this.raft.step(newMessage({ type: "MsgHup", from: this.raft.id }));
  }

  /** Appends data (leader) or forwards it to the leader. Throws ErrProposalDropped with no leader or during a transfer. */
  propose(data: Uint8Array): void {
    this.raft.step(newMessage({ type: "MsgProp", from: this.raft.id, entries: [{ term: 0, index: 0, type: 0, data }] }));
  }

  /**
   * Proposes a membership change; `data` is the app's own payload, returned by decodeConfChange
   * when the entry commits. Throws ErrConfChangePending on a leader whose previous change is not
   * applied yet (a forwarded proposal that meets one is turned into a no-op by the leader).
   */
  proposeConfChange(cc: ConfChange, data: Uint8Array = new Uint8Array(0)): void {
    const r = this.raft;
    if (r.state === "StateLeader" && r.pendingConfIndex > r.log.applied) throw new ErrConfChangePending();
    r.step(newMessage({ type: "MsgProp", from: r.id, entries: [{ term: 0, index: 0, type: 1, data: encodeConfChange(cc, data) }] }));
  }

  /** Feeds a message from a peer. Proposals the node cannot take are dropped silently (the sender's app times out). */
  step(m: Message): void {
    if (localMessageTypes.has(m.type)) throw new ErrStepLocalMsg();
    try {
      this.raft.step(m);
    } catch (e) {
      if (!(e instanceof ErrProposalDropped)) throw e;
    }
  }

  /**
   * Asks for a linearizable read point; the answer comes back as a ReadState with this ctx (which
   * must be unique). Without a leader the request is dropped silently, as in etcd.
   */
  readIndex(ctx: string): void {
    this.raft.step(newMessage({ type: "MsgReadIndex", context: ctx }));
  }

  /** Asks the leader (forwarded if we are not it) to hand leadership to `to`. */
  transferLeadership(to: NodeId): void {
    this.raft.step(newMessage({ type: "MsgTransferLeader", from: to }));
  }

  /** The transport could not reach `id`: stop pipelining to it until it answers again. */
  reportUnreachable(id: NodeId): void {
    this.raft.step(newMessage({ type: "MsgUnreachable", from: id }));
  }

  /** Whether the snapshot sent to `id` arrived; the leader resumes replication accordingly. */
  reportSnapshot(id: NodeId, ok: boolean): void {
    this.raft.step(newMessage({ type: "MsgSnapStatus", from: id, reject: !ok }));
  }

  applyConfChange(cc: ConfChange): NodeId[] {
    return this.raft.applyConfChange(cc);
  }

  status(): Status {
    return this.raft.status();
  }

  hasReady(): boolean {
    if (this.outstanding) return false;
    const r = this.raft;
    if (!sameSoftState(r.softState(), this.prevSoftState)) return true;
    const hs = r.hardState();
    if (!isEmptyHardState(hs) && !sameHardState(hs, this.prevHardState)) return true;
    if (r.log.unstable.snapshot || r.hasPendingProposals) return true;
    return r.msgs.length > 0 || r.log.unstable.entries.length > 0 || r.readStates.length > 0 || r.log.hasNextEnts();
  }

  ready(): Ready {
    if (this.outstanding) throw new Error("raft: ready() called again before advance()");
    const r = this.raft;
    r.flushProposals();
    const rd: Ready = {
      entries: r.log.unstableEntries(),
      committedEntries: r.log.nextEnts(),
      messages: r.msgs,
      readStates: r.readStates,
      mustSync: false,
    };
    const ss = r.softState();
    if (!sameSoftState(ss, this.prevSoftState)) {
      rd.softState = ss;
      this.prevSoftState = ss;
    }
    const hs = r.hardState();
    if (!isEmptyHardState(hs) && !sameHardState(hs, this.prevHardState)) rd.hardState = hs;
    const snap = r.log.unstable.snapshot;
    if (snap) rd.snapshot = snap;
    // A lost commit index is re-learned from the leader; a lost term or vote could mean voting twice.
    rd.mustSync =
      rd.entries.length > 0 ||
      rd.snapshot !== undefined ||
      hs.term !== this.prevHardState.term ||
      hs.vote !== this.prevHardState.vote;
    r.msgs = [];
    r.readStates = [];
    this.outstanding = rd;
    return rd;
  }

  /** The app persisted, sent and applied the last Ready. */
  advance(): void {
    const rd = this.outstanding;
    if (!rd) throw new Error("raft: advance() without a Ready");
    this.outstanding = null;
    const log = this.raft.log;
    if (rd.hardState) this.prevHardState = rd.hardState;
    if (rd.snapshot) {
      log.stableSnapTo(rd.snapshot.index);
      if (rd.snapshot.index > log.applied) log.appliedTo(rd.snapshot.index);
    }
    const lastCommitted = rd.committedEntries[rd.committedEntries.length - 1];
    if (lastCommitted) log.appliedTo(lastCommitted.index);
    const lastEntry = rd.entries[rd.entries.length - 1];
    if (lastEntry) log.stableTo(lastEntry.index, lastEntry.term);
  }
}

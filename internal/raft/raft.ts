// The Raft state machine, after go.etcd.io/etcd/raft (3.4, with 3.5's fast log backtracking and
// queued ReadIndex). Pure and deterministic: time is tick(), input is step(), output is the
// messages, entries and state RawNode hands out in a Ready; randomness comes from Config.random.
import { encodeConfChange } from "./confchange.ts";
import { RaftLog } from "./log.ts";
import { Progress, type ProgressState } from "./progress.ts";
import { ReadOnly } from "./readonly.ts";
import type { Storage } from "./storage.ts";
import {
  type ConfChange,
  type Entry,
  ErrProposalDropped,
  type HardState,
  type Message,
  type MessageType,
  type NodeId,
  None,
  type ReadState,
  type SoftState,
  type StateType,
  newMessage,
} from "./types.ts";

export interface Config {
  id: NodeId;
  /**
   * Initial voters, used only when storage is empty: the node then bootstraps like etcd's
   * raft.Bootstrap, starting at term 1 with one committed conf-change entry (index 1..n, data =
   * encodeConfChange({type: "add", nodeId}) with no app bytes) per peer, in the given order. Every
   * founding member must pass the same list. A node joining an existing cluster passes none and
   * learns the configuration from the leader's log or snapshot.
   */
  peers?: NodeId[];
  /** Ticks without hearing from a leader before campaigning (randomized to [e, 2e)). Default 10. */
  electionTick?: number;
  /** Ticks between leader heartbeats. Default 1. */
  heartbeatTick?: number;
  /** Uniform in [0, 1): the only source of randomness. */
  random: () => number;
  /** Ask whether an election could be won before raising the term. Default on. */
  preVote?: boolean;
  /** Leader steps down without a quorum; followers hold a leader lease. Default on. */
  checkQuorum?: boolean;
  /** Bytes of entries per MsgApp (and of committed entries per Ready). Default 1 MiB. */
  maxSizePerMsg?: number;
  /** MsgApps in flight per follower while pipelining. Default 256. */
  maxInflightMsgs?: number;
  storage: Storage;
  /** Last index the app applied before a restart; entries after it are redelivered. */
  applied?: number;
}

export interface ProgressStatus {
  match: number;
  next: number;
  state: ProgressState;
  paused: boolean;
}

export interface Status {
  id: NodeId;
  term: number;
  vote: NodeId;
  commit: number;
  applied: number;
  lead: NodeId;
  state: StateType;
  leadTransferee: NodeId;
  voters: NodeId[];
  /** Followers' replication state, on the leader only. */
  progress: Record<NodeId, ProgressStatus>;
}

type CampaignKind = "pre" | "elect" | "transfer";

/** Marks the MsgVote of a campaign a leader asked for: voters skip their leader lease. */
const transferContext = "transfer";

const voteRespType = (t: MessageType): MessageType => (t === "MsgVote" ? "MsgVoteResp" : "MsgPreVoteResp");

export class Raft {
  readonly id: NodeId;
  term = 0;
  vote: NodeId = None;
  lead: NodeId = None;
  state: StateType = "StateFollower";
  readonly log: RaftLog;
  /** The voters and, on the leader, their replication progress. */
  prs = new Map<NodeId, Progress>();
  /** Outbox, drained by RawNode.ready(). */
  msgs: Message[] = [];
  readStates: ReadState[] = [];
  leadTransferee: NodeId = None;
  /** A conf change may be proposed only once the app applied past this index (one at a time). */
  pendingConfIndex = 0;
  electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  private votes = new Map<NodeId, boolean>();
  private readOnly = new ReadOnly();
  /** ReadIndex requests that reached a new leader before it committed an entry of its term. */
  private pendingReadIndexMessages: Message[] = [];
  /** Proposals were appended since the last broadcast (see flushProposals). */
  private proposalsPending = false;

  readonly electionTimeout: number;
  readonly heartbeatTimeout: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  private readonly maxMsgSize: number;
  private readonly maxInflight: number;
  private readonly random: () => number;

  constructor(cfg: Config) {
    if (cfg.id === None) throw new Error("raft: cannot use none as id");
    this.id = cfg.id;
    this.electionTimeout = cfg.electionTick ?? 10;
    this.heartbeatTimeout = cfg.heartbeatTick ?? 1;
    if (this.heartbeatTimeout <= 0) throw new Error("raft: heartbeat tick must be greater than 0");
    if (this.electionTimeout <= this.heartbeatTimeout) throw new Error("raft: election tick must be greater than heartbeat tick");
    this.preVote = cfg.preVote ?? true;
    this.checkQuorum = cfg.checkQuorum ?? true;
    this.maxMsgSize = cfg.maxSizePerMsg ?? 1024 * 1024;
    this.maxInflight = cfg.maxInflightMsgs ?? 256;
    if (this.maxInflight <= 0) throw new Error("raft: max inflight messages must be greater than 0");
    this.random = cfg.random;
    this.log = new RaftLog(cfg.storage, this.maxMsgSize);

    const { hardState, voters } = cfg.storage.initialState();
    let initial = voters;
    const empty = voters.length === 0 && hardState.term === 0 && cfg.storage.lastIndex() === 0;
    if (empty && cfg.peers && cfg.peers.length > 0) {
      initial = [...new Set(cfg.peers)];
      const ents: Entry[] = initial.map((nodeId, i) => ({
        term: 1,
        index: i + 1,
        type: 1,
        data: encodeConfChange({ type: "add", nodeId }),
      }));
      this.log.append(ents);
      this.log.commitTo(ents.length);
      this.term = 1;
    }
    for (const id of initial) this.prs.set(id, this.newProgress());
    if (hardState.term !== 0 || hardState.vote !== None || hardState.commit !== 0) this.loadState(hardState);
    if (cfg.applied) {
      // Whatever the app applied was committed, even if the (unsynced) commit index was lost.
      if (cfg.applied > this.log.committed) this.log.commitTo(cfg.applied);
      this.log.appliedTo(cfg.applied);
    }
    this.becomeFollower(this.term, None);
  }

  softState(): SoftState {
    return { lead: this.lead, state: this.state };
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  status(): Status {
    const progress: Record<NodeId, ProgressStatus> = {};
    if (this.state === "StateLeader") {
      for (const [id, pr] of this.prs) progress[id] = { match: pr.match, next: pr.next, state: pr.state, paused: pr.isPaused() };
    }
    return {
      id: this.id,
      term: this.term,
      vote: this.vote,
      commit: this.log.committed,
      applied: this.log.applied,
      lead: this.lead,
      state: this.state,
      leadTransferee: this.leadTransferee,
      voters: [...this.prs.keys()],
      progress,
    };
  }

  private loadState(hs: HardState): void {
    if (hs.commit > this.log.lastIndex()) {
      throw new Error(`raft: state.commit ${hs.commit} is out of range [${this.log.committed}, ${this.log.lastIndex()}]`);
    }
    // A snapshot is only ever taken of committed state, so a commit index below it (the hard state
    // written after the snapshot was lost in a crash) means the snapshot's index.
    this.log.committed = Math.max(hs.commit, this.log.committed);
    this.term = hs.term;
    this.vote = hs.vote;
  }

  private newProgress(): Progress {
    return new Progress(this.log.lastIndex() + 1, this.maxInflight);
  }

  private quorum(): number {
    return Math.floor(this.prs.size / 2) + 1;
  }

  private promotable(): boolean {
    return this.prs.has(this.id);
  }

  // ---- sending ----

  private send(m: Partial<Message> & Pick<Message, "type" | "to">): void {
    const msg = newMessage(m);
    if (msg.from === None) msg.from = this.id;
    if (msg.type === "MsgVote" || msg.type === "MsgPreVote" || msg.type === "MsgVoteResp" || msg.type === "MsgPreVoteResp") {
      // Campaign messages carry the term they are about (a pre-vote's is a future term).
      if (msg.term === 0) throw new Error(`raft: term should be set when sending ${msg.type}`);
    } else if (msg.type !== "MsgProp" && msg.type !== "MsgReadIndex") {
      // Proposals and read requests are forwarded as-is and are not bound to a term.
      msg.term = this.term;
    }
    this.msgs.push(msg);
  }

  /** Sends what `to` is missing (or a snapshot); false if paused or, unless sendIfEmpty, nothing to send. */
  private sendAppend(to: NodeId, sendIfEmpty = true): boolean {
    const pr = this.prs.get(to);
    if (!pr || pr.isPaused()) return false;
    if (pr.next < this.log.firstIndex()) return this.sendSnapshot(to, pr);
    const prevIndex = pr.next - 1;
    const entries = this.log.entries(pr.next, this.maxMsgSize);
    if (entries.length === 0 && !sendIfEmpty) return false;
    this.send({ type: "MsgApp", to, index: prevIndex, logTerm: this.log.term(prevIndex), entries, commit: this.log.committed });
    if (entries.length > 0) {
      const last = entries[entries.length - 1]!.index;
      if (pr.state === "StateReplicate") {
        pr.optimisticUpdate(last);
        pr.inflights.add(last);
      } else if (pr.state === "StateProbe") {
        pr.probeSent = true;
      }
    }
    return true;
  }

  private sendSnapshot(to: NodeId, pr: Progress): boolean {
    // A snapshot is expensive: only for a follower that shows signs of life.
    if (!pr.recentActive) return false;
    const snapshot = this.log.snapshot();
    if (snapshot.index === 0) return false;
    pr.becomeSnapshot(snapshot.index);
    this.send({ type: "MsgSnap", to, snapshot });
    return true;
  }

  private sendHeartbeat(to: NodeId, ctx: string | undefined): void {
    // Never tell a follower to commit past what it is known to hold.
    const commit = Math.min(this.prs.get(to)!.match, this.log.committed);
    this.send(ctx === undefined ? { type: "MsgHeartbeat", to, commit } : { type: "MsgHeartbeat", to, commit, context: ctx });
  }

  private bcastAppend(): void {
    for (const id of this.prs.keys()) if (id !== this.id) this.sendAppend(id);
  }

  private bcastHeartbeat(ctx: string | undefined): void {
    for (const id of this.prs.keys()) if (id !== this.id) this.sendHeartbeat(id, ctx);
  }

  // ---- state transitions ----

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = None;
    }
    this.lead = None;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout = this.electionTimeout + Math.floor(this.random() * this.electionTimeout);
    this.leadTransferee = None;
    this.votes.clear();
    for (const id of this.prs.keys()) {
      const pr = this.newProgress();
      if (id === this.id) pr.match = this.log.lastIndex();
      this.prs.set(id, pr);
    }
    this.pendingConfIndex = 0;
    this.readOnly = new ReadOnly();
    this.pendingReadIndexMessages = [];
    this.proposalsPending = false;
  }

  becomeFollower(term: number, lead: NodeId): void {
    this.reset(term);
    this.lead = lead;
    this.state = "StateFollower";
  }

  private becomePreCandidate(): void {
    if (this.state === "StateLeader") throw new Error("raft: invalid transition [leader -> pre-candidate]");
    // Neither the term nor the vote changes: a failed pre-vote leaves no trace.
    this.votes.clear();
    this.lead = None;
    this.state = "StatePreCandidate";
  }

  private becomeCandidate(): void {
    if (this.state === "StateLeader") throw new Error("raft: invalid transition [leader -> candidate]");
    this.reset(this.term + 1);
    this.vote = this.id;
    this.state = "StateCandidate";
  }

  private becomeLeader(): void {
    if (this.state === "StateFollower") throw new Error("raft: invalid transition [follower -> leader]");
    this.reset(this.term);
    this.lead = this.id;
    this.state = "StateLeader";
    this.prs.get(this.id)?.becomeReplicate();
    // The empty entry lets the leader commit (and so learn the commit index of) everything before it.
    this.appendEntry([{ term: 0, index: 0, type: 0, data: new Uint8Array(0) }]);
    // No conf change until the app applied that entry: a leader must commit an entry of its own term
    // before changing membership, or single-member changes from different terms can overlap.
    this.pendingConfIndex = this.log.lastIndex();
  }

  private appendEntry(es: Entry[]): void {
    const li = this.log.lastIndex();
    const ents = es.map((e, i): Entry => ({ term: this.term, index: li + 1 + i, type: e.type, data: e.data }));
    this.log.append(ents);
    // The leader's own entries count towards commit right away; RawNode hands the next Ready out only
    // after the app persisted this one, so no commit index beyond them is sent before they are durable.
    this.prs.get(this.id)?.maybeUpdate(this.log.lastIndex());
    if (this.maybeCommit()) this.releasePendingReadIndexMessages();
  }

  /**
   * Sends the proposals appended since the last call. Broadcasting once per Ready rather than once
   * per proposal turns many proposals into one MsgApp per follower, and nothing is sent before
   * the Ready is handed out anyway.
   */
  flushProposals(): void {
    if (!this.proposalsPending) return;
    this.proposalsPending = false;
    this.bcastAppend();
  }

  get hasPendingProposals(): boolean {
    return this.proposalsPending;
  }

  private maybeCommit(): boolean {
    if (this.prs.size === 0) return false;
    const matches: number[] = [];
    for (const pr of this.prs.values()) matches.push(pr.match);
    matches.sort((a, b) => b - a);
    return this.log.maybeCommit(matches[this.quorum() - 1]!, this.term);
  }

  private hasUnappliedConfChanges(): boolean {
    if (this.log.committed <= this.log.applied) return false;
    const lo = Math.max(this.log.applied + 1, this.log.firstIndex());
    return this.log.slice(lo, this.log.committed + 1, Infinity).some((e) => e.type === 1);
  }

  private hup(kind: CampaignKind): void {
    if (this.state === "StateLeader") return;
    if (!this.promotable()) return;
    // Our configuration is about to change; campaign with the new one.
    if (this.hasUnappliedConfChanges()) return;
    this.campaign(kind);
  }

  private campaign(kind: CampaignKind): void {
    let voteType: MessageType;
    let term: number;
    if (kind === "pre") {
      this.becomePreCandidate();
      voteType = "MsgPreVote";
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      voteType = "MsgVote";
      term = this.term;
    }
    if (this.poll(this.id, true).granted >= this.quorum()) {
      if (kind === "pre") this.campaign("elect");
      else this.becomeLeader();
      return;
    }
    for (const id of this.prs.keys()) {
      if (id === this.id) continue;
      const m: Partial<Message> & Pick<Message, "type" | "to"> = {
        type: voteType,
        to: id,
        term,
        index: this.log.lastIndex(),
        logTerm: this.log.lastTerm(),
      };
      if (kind === "transfer") m.context = transferContext;
      this.send(m);
    }
  }

  private poll(id: NodeId, granted: boolean): { granted: number; rejected: number } {
    if (!this.votes.has(id)) this.votes.set(id, granted);
    let g = 0;
    let r = 0;
    for (const voter of this.prs.keys()) {
      const v = this.votes.get(voter);
      if (v === true) g++;
      else if (v === false) r++;
    }
    return { granted: g, rejected: r };
  }

  // ---- input ----

  tick(): void {
    if (this.state === "StateLeader") this.tickHeartbeat();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.step(newMessage({ type: "MsgHup", from: this.id }));
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTimeout) {
      this.electionElapsed = 0;
      if (this.checkQuorum) this.step(newMessage({ type: "MsgCheckQuorum", from: this.id }));
      // A transfer that did not finish within an election timeout has failed: take proposals again.
      if (this.state === "StateLeader" && this.leadTransferee !== None) this.leadTransferee = None;
    }
    if (this.state !== "StateLeader") return;
    if (this.heartbeatElapsed >= this.heartbeatTimeout) {
      this.heartbeatElapsed = 0;
      this.step(newMessage({ type: "MsgBeat", from: this.id }));
    }
  }

  /** Throws ErrProposalDropped when a proposal cannot be accepted. */
  step(m: Message): void {
    if (m.term === 0) {
      // Local message (or a forwarded proposal / read request).
    } else if (m.term > this.term) {
      if (m.type === "MsgVote" || m.type === "MsgPreVote") {
        const force = m.context === transferContext;
        const inLease = this.checkQuorum && this.lead !== None && this.electionElapsed < this.electionTimeout;
        // Leader lease: we heard from a live leader recently, so this candidate is a disruptive one
        // (partitioned, or removed) and must not depose it.
        if (!force && inLease) return;
      }
      if (m.type === "MsgPreVote") {
        // A pre-vote never changes our term.
      } else if (m.type === "MsgPreVoteResp" && !m.reject) {
        // Granted pre-votes come back with the future term; the real campaign raises ours.
      } else if (m.type === "MsgApp" || m.type === "MsgHeartbeat" || m.type === "MsgSnap") {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, None);
      }
    } else if (m.term < this.term) {
      if ((this.checkQuorum || this.preVote) && (m.type === "MsgHeartbeat" || m.type === "MsgApp")) {
        // A stale leader would otherwise never learn of our term (we ignore its messages and, with
        // pre-vote or a lease, never bump it by campaigning): tell it, so it steps down.
        this.send({ type: "MsgAppResp", to: m.from });
      } else if (m.type === "MsgPreVote") {
        // Without an answer the pre-candidate would wait forever; our term tells it to give up.
        this.send({ type: "MsgPreVoteResp", to: m.from, term: this.term, reject: true });
      }
      return;
    }

    switch (m.type) {
      case "MsgHup":
        this.hup(this.preVote ? "pre" : "elect");
        return;
      case "MsgVote":
      case "MsgPreVote": {
        const canVote =
          this.vote === m.from ||
          (this.vote === None && this.lead === None) ||
          (m.type === "MsgPreVote" && m.term > this.term);
        if (canVote && this.log.isUpToDate(m.index, m.logTerm)) {
          this.send({ type: voteRespType(m.type), to: m.from, term: m.term });
          if (m.type === "MsgVote") {
            this.electionElapsed = 0;
            this.vote = m.from;
          }
        } else {
          this.send({ type: voteRespType(m.type), to: m.from, term: this.term, reject: true });
        }
        return;
      }
    }
    switch (this.state) {
      case "StateLeader":
        this.stepLeader(m);
        return;
      case "StateCandidate":
      case "StatePreCandidate":
        this.stepCandidate(m);
        return;
      case "StateFollower":
        this.stepFollower(m);
        return;
    }
  }

  private stepLeader(m: Message): void {
    switch (m.type) {
      case "MsgBeat":
        this.bcastHeartbeat(this.readOnly.lastPendingRequestCtx());
        return;
      case "MsgCheckQuorum": {
        const self = this.prs.get(this.id);
        if (self) self.recentActive = true;
        let active = 0;
        for (const pr of this.prs.values()) if (pr.recentActive) active++;
        if (active < this.quorum()) this.becomeFollower(this.term, None);
        for (const [id, pr] of this.prs) if (id !== this.id) pr.recentActive = false;
        return;
      }
      case "MsgProp": {
        if (m.entries.length === 0) throw new Error("raft: stepped empty MsgProp");
        if (!this.prs.has(this.id) || this.leadTransferee !== None) throw new ErrProposalDropped();
        const li = this.log.lastIndex();
        const ents = m.entries.map((e, i): Entry => {
          if (e.type !== 1) return e;
          // A second change while one is unapplied becomes a no-op entry (the proposer times out).
          if (this.pendingConfIndex > this.log.applied) return { term: 0, index: 0, type: 0, data: new Uint8Array(0) };
          this.pendingConfIndex = li + i + 1;
          return e;
        });
        this.appendEntry(ents);
        this.proposalsPending = true;
        return;
      }
      case "MsgReadIndex":
        // Until an entry of this term commits, our commit index may lag the previous leader's.
        if (this.quorum() > 1 && !this.committedEntryInCurrentTerm()) {
          this.pendingReadIndexMessages.push(m);
          return;
        }
        this.handleReadIndex(m);
        return;
    }

    const pr = this.prs.get(m.from);
    if (!pr) return;
    switch (m.type) {
      case "MsgAppResp": {
        pr.recentActive = true;
        if (m.reject) {
          let hint = m.rejectHint;
          if (m.logTerm > 0) hint = this.log.findConflictByTerm(m.rejectHint, m.logTerm);
          if (pr.maybeDecrTo(m.index, hint)) {
            if (pr.state === "StateReplicate") pr.becomeProbe();
            this.sendAppend(m.from);
          }
          return;
        }
        const oldPaused = pr.isPaused();
        if (!pr.maybeUpdate(m.index)) return;
        if (pr.state === "StateProbe") {
          pr.becomeReplicate();
        } else if (pr.state === "StateSnapshot" && pr.match >= pr.pendingSnapshot) {
          // Back to replicating through probe, which positions next after the snapshot.
          pr.becomeProbe();
          pr.becomeReplicate();
        } else if (pr.state === "StateReplicate") {
          pr.inflights.freeLE(m.index);
        }
        if (this.maybeCommit()) {
          this.releasePendingReadIndexMessages();
          this.bcastAppend();
        } else if (oldPaused) {
          this.sendAppend(m.from);
        }
        // The window may have room for several size-limited messages now.
        while (this.sendAppend(m.from, false)) continue;
        if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) {
          this.send({ type: "MsgTimeoutNow", to: m.from });
        }
        return;
      }
      case "MsgHeartbeatResp": {
        pr.recentActive = true;
        pr.probeSent = false;
        // A follower that answers heartbeats but whose acks were lost must not stay blocked.
        if (pr.state === "StateReplicate" && pr.inflights.full()) pr.inflights.freeFirstOne();
        if (pr.match < this.log.lastIndex()) this.sendAppend(m.from);
        if (m.context === undefined) return;
        const acks = this.readOnly.recvAck(m.from, m.context);
        if (!acks) return;
        let n = 0;
        for (const id of acks) if (this.prs.has(id)) n++;
        if (n < this.quorum()) return;
        for (const rs of this.readOnly.advance(m.context)) this.respondReadIndex(rs.req, rs.index);
        return;
      }
      case "MsgSnapStatus":
        if (pr.state !== "StateSnapshot") return;
        if (m.reject) pr.pendingSnapshot = 0;
        pr.becomeProbe();
        // Wait for the follower's MsgAppResp (or a heartbeat response) before probing.
        pr.probeSent = true;
        return;
      case "MsgUnreachable":
        if (pr.state === "StateReplicate") pr.becomeProbe();
        return;
      case "MsgTransferLeader": {
        const transferee = m.from;
        if (this.leadTransferee !== None) {
          if (this.leadTransferee === transferee) return;
          this.leadTransferee = None;
        }
        if (transferee === this.id) return;
        // The transfer has one election timeout to complete.
        this.electionElapsed = 0;
        this.leadTransferee = transferee;
        if (pr.match === this.log.lastIndex()) this.send({ type: "MsgTimeoutNow", to: transferee });
        else this.sendAppend(transferee);
        return;
      }
    }
  }

  private stepCandidate(m: Message): void {
    const myVoteResp: MessageType = this.state === "StatePreCandidate" ? "MsgPreVoteResp" : "MsgVoteResp";
    switch (m.type) {
      case "MsgProp":
        throw new ErrProposalDropped();
      case "MsgApp":
        this.becomeFollower(m.term, m.from);
        this.handleAppend(m);
        return;
      case "MsgHeartbeat":
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case "MsgSnap":
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
    }
    if (m.type !== myVoteResp) return;
    const { granted, rejected } = this.poll(m.from, !m.reject);
    if (granted >= this.quorum()) {
      if (this.state === "StatePreCandidate") {
        this.campaign("elect");
      } else {
        this.becomeLeader();
        this.bcastAppend();
      }
    } else if (rejected >= this.quorum()) {
      this.becomeFollower(this.term, None);
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case "MsgProp":
        if (this.lead === None) throw new ErrProposalDropped();
        this.send({ ...m, to: this.lead });
        return;
      case "MsgApp":
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppend(m);
        return;
      case "MsgHeartbeat":
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return;
      case "MsgSnap":
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return;
      case "MsgTransferLeader":
      case "MsgReadIndex":
        if (this.lead === None) return;
        this.send({ ...m, to: this.lead });
        return;
      case "MsgTimeoutNow":
        this.hup("transfer");
        return;
      case "MsgReadIndexResp":
        this.readStates.push({ index: m.index, ctx: m.context ?? "" });
        return;
    }
  }

  private handleAppend(m: Message): void {
    if (m.index < this.log.committed) {
      this.send({ type: "MsgAppResp", to: m.from, index: this.log.committed });
      return;
    }
    const last = this.log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (last !== null) {
      this.send({ type: "MsgAppResp", to: m.from, index: last });
      return;
    }
    // Tell the leader where our log could match, so it skips a whole term per round trip.
    const hintIndex = this.log.findConflictByTerm(Math.min(m.index, this.log.lastIndex()), m.logTerm);
    this.send({
      type: "MsgAppResp",
      to: m.from,
      index: m.index,
      reject: true,
      rejectHint: hintIndex,
      logTerm: this.log.term(hintIndex),
    });
  }

  private handleHeartbeat(m: Message): void {
    this.log.commitTo(m.commit);
    this.send(m.context === undefined ? { type: "MsgHeartbeatResp", to: m.from } : { type: "MsgHeartbeatResp", to: m.from, context: m.context });
  }

  private handleSnapshot(m: Message): void {
    const s = m.snapshot;
    if (s && this.restore(s)) this.send({ type: "MsgAppResp", to: m.from, index: this.log.lastIndex() });
    else this.send({ type: "MsgAppResp", to: m.from, index: this.log.committed });
  }

  private restore(s: NonNullable<Message["snapshot"]>): boolean {
    if (s.index <= this.log.committed) return false;
    if (this.log.matchTerm(s.index, s.term)) {
      // We already hold the snapshot's last entry: just learn that it is committed.
      this.log.commitTo(s.index);
      return false;
    }
    this.log.restore(s);
    this.prs = new Map(s.voters.map((id) => [id, this.newProgress()]));
    return true;
  }

  private handleReadIndex(m: Message): void {
    if (this.prs.size === 1 && this.prs.has(this.id)) {
      this.respondReadIndex(m, this.log.committed);
      return;
    }
    const ctx = m.context ?? "";
    this.readOnly.addRequest(this.log.committed, m);
    this.readOnly.recvAck(this.id, ctx);
    this.bcastHeartbeat(ctx);
  }

  private respondReadIndex(req: Message, index: number): void {
    if (req.from === None || req.from === this.id) {
      this.readStates.push({ index, ctx: req.context ?? "" });
    } else {
      this.send(
        req.context === undefined
          ? { type: "MsgReadIndexResp", to: req.from, index }
          : { type: "MsgReadIndexResp", to: req.from, index, context: req.context },
      );
    }
  }

  private committedEntryInCurrentTerm(): boolean {
    return this.log.term(this.log.committed) === this.term;
  }

  private releasePendingReadIndexMessages(): void {
    if (this.pendingReadIndexMessages.length === 0 || !this.committedEntryInCurrentTerm()) return;
    const msgs = this.pendingReadIndexMessages;
    this.pendingReadIndexMessages = [];
    for (const m of msgs) this.handleReadIndex(m);
  }

  /** Applies a committed conf change (the app calls this when it applies the entry); returns the voters. */
  applyConfChange(cc: ConfChange): NodeId[] {
    if (cc.type === "add") {
      if (!this.prs.has(cc.nodeId)) {
        const pr = this.newProgress();
        // A new member gets one election timeout to show up before it counts as inactive.
        pr.recentActive = true;
        this.prs.set(cc.nodeId, pr);
      }
    } else {
      this.prs.delete(cc.nodeId);
    }
    if (this.state === "StateLeader") {
      if (!this.prs.has(this.id)) {
        // Removed: lead no more; the remaining members elect a leader among themselves.
        this.becomeFollower(this.term, None);
      } else {
        if (this.leadTransferee !== None && !this.prs.has(this.leadTransferee)) this.leadTransferee = None;
        // A smaller quorum may commit more; a new member needs its first probe.
        if (this.maybeCommit()) {
          this.releasePendingReadIndexMessages();
          this.bcastAppend();
        } else if (cc.type === "add" && cc.nodeId !== this.id) {
          this.sendAppend(cc.nodeId);
        }
      }
    }
    return [...this.prs.keys()];
  }
}

// The vocabulary of the consensus core: messages, states, snapshots and errors, modelled on
// go.etcd.io/etcd/raft so that etcd's documentation and reasoning carry over.
import type { Entry, HardState } from "../kv/types.ts";

export type { Entry, HardState };

/** A member ID as etcd prints it (lowercase hex). */
export type NodeId = string;
/** No node: no vote cast, no known leader. */
export const None: NodeId = "";

export const emptyHardState = (): HardState => ({ term: 0, vote: None, commit: 0 });

export type MessageType =
  | "MsgHup"
  | "MsgBeat"
  | "MsgProp"
  | "MsgApp"
  | "MsgAppResp"
  | "MsgVote"
  | "MsgVoteResp"
  | "MsgPreVote"
  | "MsgPreVoteResp"
  | "MsgSnap"
  | "MsgHeartbeat"
  | "MsgHeartbeatResp"
  | "MsgUnreachable"
  | "MsgSnapStatus"
  | "MsgCheckQuorum"
  | "MsgTransferLeader"
  | "MsgTimeoutNow"
  | "MsgReadIndex"
  | "MsgReadIndexResp";

/** Messages the node generates for itself (or the app reports about a peer); never sent on the wire. */
export const localMessageTypes: ReadonlySet<MessageType> = new Set<MessageType>([
  "MsgHup",
  "MsgBeat",
  "MsgUnreachable",
  "MsgSnapStatus",
  "MsgCheckQuorum",
]);

export interface SnapshotMeta {
  index: number;
  term: number;
  /** The voters as of `index`: a restored node takes its configuration from here. */
  voters: NodeId[];
}

export interface Snapshot extends SnapshotMeta {
  data: Uint8Array;
}

export const emptySnapshot = (): Snapshot => ({ index: 0, term: 0, voters: [], data: new Uint8Array(0) });

/**
 * One message between peers: a plain object (the transport encodes Uint8Array data as it likes).
 * Field meanings follow etcd's raftpb.Message; `context` carries a ReadIndex request's ctx (echoed by
 * heartbeats) or, on MsgVote, "transfer" for a campaign that a leader handed over.
 */
export interface Message {
  type: MessageType;
  to: NodeId;
  from: NodeId;
  term: number;
  logTerm: number;
  index: number;
  entries: Entry[];
  commit: number;
  reject: boolean;
  rejectHint: number;
  snapshot?: Snapshot;
  context?: string;
}

/** A message with the fields not given zeroed. */
export function newMessage(m: Partial<Message> & Pick<Message, "type">): Message {
  return { to: None, from: None, term: 0, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0, ...m };
}

export type StateType = "StateFollower" | "StatePreCandidate" | "StateCandidate" | "StateLeader";

/** Volatile state worth telling the app about (who leads, what we are). */
export interface SoftState {
  lead: NodeId;
  state: StateType;
}

/** A ReadIndex answer: once the app has applied `index`, a read for `ctx` is linearizable. */
export interface ReadState {
  index: number;
  ctx: string;
}

/** A single-member configuration change (etcd 3.4 does not use joint consensus). */
export interface ConfChange {
  type: "add" | "remove";
  nodeId: NodeId;
}

/** A proposal was not appended: no leader known, or the leader is handing over leadership. */
export class ErrProposalDropped extends Error {
  override readonly name = "ErrProposalDropped";
  constructor() {
    super("raft proposal dropped");
  }
}

/** The local leader still has an unapplied configuration change; only one at a time. */
export class ErrConfChangePending extends Error {
  override readonly name = "ErrConfChangePending";
  constructor() {
    super("raft: a configuration change is already pending");
  }
}

/** The requested index is older than the storage's first entry (it is in the snapshot). */
export class ErrCompacted extends Error {
  override readonly name = "ErrCompacted";
  constructor() {
    super("requested index is unavailable due to compaction");
  }
}

/** The requested index is beyond the last entry. */
export class ErrUnavailable extends Error {
  override readonly name = "ErrUnavailable";
  constructor() {
    super("requested entry at index is unavailable");
  }
}

/** A snapshot older than (or as old as) the one already held. */
export class ErrSnapOutOfDate extends Error {
  override readonly name = "ErrSnapOutOfDate";
  constructor() {
    super("requested index is older than the existing snapshot");
  }
}

/** A local-only message type (MsgHup, MsgBeat, ...) arrived through RawNode.step. */
export class ErrStepLocalMsg extends Error {
  override readonly name = "ErrStepLocalMsg";
  constructor() {
    super("raft: cannot step raft local message");
  }
}

/** Rough wire size of an entry, for MaxSizePerMsg accounting. */
export const entrySize = (e: Entry): number => e.data.byteLength + 16;

/** The longest prefix within maxSize bytes, but never less than one entry (progress over precision). */
export function limitSize(ents: Entry[], maxSize: number): Entry[] {
  if (ents.length === 0) return ents;
  let size = entrySize(ents[0]!);
  let n = 1;
  for (; n < ents.length; n++) {
    size += entrySize(ents[n]!);
    if (size > maxSize) break;
  }
  return n === ents.length ? ents : ents.slice(0, n);
}

// The stable part of the log as Raft reads it, and an in-memory implementation. The app writes to
// it (append, setHardState, applySnapshot) after making the same data durable, so Storage always
// describes what survives a crash.
import {
  type Entry,
  ErrCompacted,
  ErrSnapOutOfDate,
  ErrUnavailable,
  type HardState,
  type NodeId,
  type Snapshot,
  emptyHardState,
  emptySnapshot,
  limitSize,
} from "./types.ts";

export interface InitialState {
  hardState: HardState;
  /** The configuration as of the snapshot; conf changes after it are re-applied from the log. */
  voters: NodeId[];
}

export interface Storage {
  initialState(): InitialState;
  /** Entries [lo, hi), at most maxSize bytes but at least one. Throws ErrCompacted/ErrUnavailable. */
  entries(lo: number, hi: number, maxSize: number): Entry[];
  /** Term of entry i; valid from the snapshot index (firstIndex - 1) to lastIndex. */
  term(i: number): number;
  firstIndex(): number;
  lastIndex(): number;
  snapshot(): Snapshot;
}

export class MemoryStorage implements Storage {
  private hardState: HardState = emptyHardState();
  private snap: Snapshot = emptySnapshot();
  /** ents[0] is a placeholder standing for the snapshot's last entry (index and term only). */
  private ents: Entry[] = [{ term: 0, index: 0, type: 0, data: new Uint8Array(0) }];

  initialState(): InitialState {
    return { hardState: { ...this.hardState }, voters: [...this.snap.voters] };
  }

  setHardState(hs: HardState): void {
    this.hardState = { ...hs };
  }

  private get offset(): number {
    return this.ents[0]!.index;
  }

  entries(lo: number, hi: number, maxSize: number): Entry[] {
    if (lo <= this.offset) throw new ErrCompacted();
    if (hi > this.lastIndex() + 1) throw new ErrUnavailable();
    return limitSize(this.ents.slice(lo - this.offset, hi - this.offset), maxSize);
  }

  term(i: number): number {
    if (i < this.offset) throw new ErrCompacted();
    const e = this.ents[i - this.offset];
    if (!e) throw new ErrUnavailable();
    return e.term;
  }

  firstIndex(): number {
    return this.offset + 1;
  }

  lastIndex(): number {
    return this.offset + this.ents.length - 1;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /** Replaces the whole log with a snapshot received from the leader. */
  applySnapshot(s: Snapshot): void {
    if (s.index <= this.snap.index) throw new ErrSnapOutOfDate();
    this.snap = s;
    this.ents = [{ term: s.term, index: s.index, type: 0, data: new Uint8Array(0) }];
  }

  /** Records the app's state at `index` (<= applied) as the snapshot to send to lagging followers. */
  createSnapshot(index: number, voters: NodeId[], data: Uint8Array): Snapshot {
    if (index <= this.snap.index) throw new ErrSnapOutOfDate();
    if (index > this.lastIndex()) throw new Error(`raft: snapshot ${index} is beyond last index ${this.lastIndex()}`);
    this.snap = { index, term: this.term(index), voters: [...voters], data };
    return this.snap;
  }

  /**
   * Drops entries up to and including `index`; `index` becomes the placeholder. Keep `index` at or
   * below the snapshot's: a follower sent the snapshot needs the entries right after it.
   */
  compact(index: number): void {
    if (index <= this.offset) throw new ErrCompacted();
    if (index > this.lastIndex()) throw new Error(`raft: compact ${index} is beyond last index ${this.lastIndex()}`);
    const i = index - this.offset;
    const head: Entry = { term: this.ents[i]!.term, index, type: 0, data: new Uint8Array(0) };
    this.ents = [head, ...this.ents.slice(i + 1)];
  }

  /** Appends entries, replacing any existing suffix they conflict with. */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const last = entries[entries.length - 1]!.index;
    if (last < first) return;
    const fresh = first > entries[0]!.index ? entries.slice(first - entries[0]!.index) : entries;
    const at = fresh[0]!.index - this.offset;
    if (at > this.ents.length) {
      throw new Error(`raft: missing log entry [last: ${this.lastIndex()}, append at: ${fresh[0]!.index}]`);
    }
    if (at < this.ents.length) this.ents.length = at;
    for (const e of fresh) this.ents.push(e);
  }
}

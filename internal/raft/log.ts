// Raft's view of its log: what Storage holds (durable) followed by what the app has not yet
// persisted (the unstable tail, handed out in Ready.entries). Commit and applied live here too.
import { ErrCompacted, type Entry, type Snapshot, limitSize } from "./types.ts";
import type { Storage } from "./storage.ts";

/** Entries (and possibly a snapshot) not yet written to Storage; entries[i] has index offset + i. */
export class Unstable {
  snapshot: Snapshot | null = null;
  entries: Entry[] = [];

  constructor(public offset: number) {}

  maybeFirstIndex(): number | null {
    return this.snapshot ? this.snapshot.index + 1 : null;
  }

  maybeLastIndex(): number | null {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1;
    return this.snapshot ? this.snapshot.index : null;
  }

  maybeTerm(i: number): number | null {
    if (i < this.offset) return this.snapshot && this.snapshot.index === i ? this.snapshot.term : null;
    const e = this.entries[i - this.offset];
    return e ? e.term : null;
  }

  /** The app persisted everything up to (i, t); a mismatching term means the tail was rewritten since. */
  stableTo(i: number, t: number): void {
    if (i < this.offset || this.maybeTerm(i) !== t) return;
    this.entries = this.entries.slice(i + 1 - this.offset);
    this.offset = i + 1;
  }

  stableSnapTo(i: number): void {
    if (this.snapshot && this.snapshot.index === i) this.snapshot = null;
  }

  restore(s: Snapshot): void {
    this.offset = s.index + 1;
    this.entries = [];
    this.snapshot = s;
  }

  truncateAndAppend(ents: Entry[]): void {
    const after = ents[0]!.index;
    if (after === this.offset + this.entries.length) {
      for (const e of ents) this.entries.push(e);
    } else if (after <= this.offset) {
      // The new entries replace everything unstable and part of Storage: Ready.entries will
      // overwrite that part of Storage.
      this.offset = after;
      this.entries = ents.slice();
    } else {
      this.entries = this.entries.slice(0, after - this.offset).concat(ents);
    }
  }

  slice(lo: number, hi: number): Entry[] {
    return this.entries.slice(lo - this.offset, hi - this.offset);
  }
}

export class RaftLog {
  readonly unstable: Unstable;
  /** Highest index known to be stored on a quorum. */
  committed: number;
  /** Highest index the app has applied (acknowledged through RawNode.advance). */
  applied: number;

  constructor(
    readonly storage: Storage,
    private readonly maxNextEntsSize: number,
  ) {
    this.unstable = new Unstable(storage.lastIndex() + 1);
    this.committed = this.applied = storage.firstIndex() - 1;
  }

  firstIndex(): number {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex();
  }

  lastIndex(): number {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex();
  }

  lastTerm(): number {
    return this.term(this.lastIndex());
  }

  /** Term of entry i, or 0 outside [firstIndex - 1, lastIndex] (compacted or not yet written). */
  term(i: number): number {
    if (i < this.firstIndex() - 1 || i > this.lastIndex()) return 0;
    return this.unstable.maybeTerm(i) ?? this.storage.term(i);
  }

  matchTerm(i: number, t: number): boolean {
    return this.term(i) === t;
  }

  /** Whether a candidate whose log ends at (lasti, term) is at least as up to date as ours. */
  isUpToDate(lasti: number, term: number): boolean {
    const lt = this.lastTerm();
    return term > lt || (term === lt && lasti >= this.lastIndex());
  }

  /**
   * A leader's MsgApp: if our entry at `index` has `logTerm`, append what conflicts or is new and
   * advance commit; returns the index of the last entry the message covered, or null on mismatch.
   */
  maybeAppend(index: number, logTerm: number, committed: number, ents: Entry[]): number | null {
    if (!this.matchTerm(index, logTerm)) return null;
    const lastNew = index + ents.length;
    const ci = this.findConflict(ents);
    if (ci !== 0) {
      if (ci <= this.committed) throw new Error(`raft: entry ${ci} conflicts with committed entry [committed(${this.committed})]`);
      this.append(ents.slice(ci - (index + 1)));
    }
    this.commitTo(Math.min(committed, lastNew));
    return lastNew;
  }

  append(ents: Entry[]): number {
    if (ents.length === 0) return this.lastIndex();
    const after = ents[0]!.index - 1;
    if (after < this.committed) throw new Error(`raft: after(${after}) is out of range [committed(${this.committed})]`);
    this.unstable.truncateAndAppend(ents);
    return this.lastIndex();
  }

  /** Index of the first entry whose term differs from ours (or that we lack), 0 if none. */
  findConflict(ents: Entry[]): number {
    for (const e of ents) if (!this.matchTerm(e.index, e.term)) return e.index;
    return 0;
  }

  /**
   * The last index <= `index` whose term is <= `term`. Used for fast backtracking: no entry after it
   * can match a log whose entry at `index` has `term`, so a whole term's worth of probes is skipped.
   */
  findConflictByTerm(index: number, term: number): number {
    if (index > this.lastIndex()) return index;
    // Compacted indexes read as term 0, which stops the walk at the snapshot.
    while (index > 0 && this.term(index) > term) index--;
    return index;
  }

  unstableEntries(): Entry[] {
    return this.unstable.entries.slice();
  }

  /** Committed entries the app has not applied yet, size-limited. */
  nextEnts(): Entry[] {
    const off = Math.max(this.applied + 1, this.firstIndex());
    if (this.committed + 1 <= off) return [];
    return this.slice(off, this.committed + 1, this.maxNextEntsSize);
  }

  hasNextEnts(): boolean {
    return this.committed + 1 > Math.max(this.applied + 1, this.firstIndex());
  }

  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }

  commitTo(toCommit: number): void {
    if (toCommit <= this.committed) return;
    if (toCommit > this.lastIndex()) {
      throw new Error(`raft: tocommit(${toCommit}) is out of range [lastIndex(${this.lastIndex()})]`);
    }
    this.committed = toCommit;
  }

  appliedTo(i: number): void {
    if (i === 0) return;
    if (i > this.committed || i < this.applied) {
      throw new Error(`raft: applied(${i}) is out of range [prevApplied(${this.applied}), committed(${this.committed})]`);
    }
    this.applied = i;
  }

  stableTo(i: number, t: number): void {
    this.unstable.stableTo(i, t);
  }

  stableSnapTo(i: number): void {
    this.unstable.stableSnapTo(i);
  }

  /** Raft commits by counting replicas only for entries of the leader's own term (§5.4.2). */
  maybeCommit(maxIndex: number, term: number): boolean {
    if (maxIndex > this.committed && this.term(maxIndex) === term) {
      this.commitTo(maxIndex);
      return true;
    }
    return false;
  }

  restore(s: Snapshot): void {
    this.committed = s.index;
    this.unstable.restore(s);
  }

  /** Entries from i to the end, at most maxSize bytes. Throws ErrCompacted if i is in the snapshot. */
  entries(i: number, maxSize: number): Entry[] {
    if (i > this.lastIndex()) return [];
    return this.slice(i, this.lastIndex() + 1, maxSize);
  }

  slice(lo: number, hi: number, maxSize: number): Entry[] {
    if (lo < this.firstIndex()) throw new ErrCompacted();
    if (hi > this.lastIndex() + 1) throw new Error(`raft: slice[${lo},${hi}) out of bound [${this.firstIndex()},${this.lastIndex()}]`);
    if (lo === hi) return [];
    const off = this.unstable.offset;
    let ents: Entry[] = [];
    if (lo < off) {
      ents = this.storage.entries(lo, Math.min(hi, off), maxSize);
      // Storage stopped early for size: the unstable part would exceed the limit too.
      if (ents.length < Math.min(hi, off) - lo) return ents;
    }
    if (hi > off) {
      const u = this.unstable.slice(Math.max(lo, off), hi);
      ents = ents.length > 0 ? ents.concat(u) : u;
    }
    return limitSize(ents, maxSize);
  }
}

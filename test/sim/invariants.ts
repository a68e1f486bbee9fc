// Raft's safety properties (Ongaro's thesis, Figure 3.2), checked incrementally as the simulation
// runs: each observation only looks at what changed, so checking after every step stays cheap.
import type { Raft } from "../../internal/raft/raft.ts";
import type { Entry, NodeId, Snapshot } from "../../internal/raft/types.ts";

export class Violation extends Error {
  override readonly name = "Violation";
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

interface SeenEntry {
  type: number;
  data: Uint8Array;
  /** Term of the entry before it; -1 while unknown (compacted on every node that had it). */
  prevTerm: number;
}

export class Invariants {
  private readonly leaderOfTerm = new Map<number, NodeId>();
  /** committedTerm[i]: the term of the entry committed at index i (0 = not observed). */
  private readonly committedTerm: number[] = [];
  /**
   * commitTerm[i]: the term in which entry i was committed, or rather the lowest term of a node seen
   * knowing it committed (a node learns of a commit at its current term or later, so this bounds
   * the real one from above and the check below never blames a leader wrongly).
   */
  private readonly commitTerm: number[] = [];
  private maxCommitted = 0;
  private readonly applied: (Entry | undefined)[] = [];
  private readonly stateHash: (number | undefined)[] = [];
  private readonly entries = new Map<string, SeenEntry>();
  /** Per process incarnation ("id#n"): last commit seen, and the term we checked it as leader. */
  private readonly lastCommit = new Map<string, number>();
  private readonly leaderChecked = new Map<string, number>();
  /** Per incarnation: the term it led at its last observation, if it was leader. */
  private readonly ledTerm = new Map<string, number>();
  /** The live Raft of every running node, to check current leaders against new commits. */
  private readonly live = new Map<NodeId, Raft>();

  /** A node's process stopped; forget its volatile state. */
  down(id: NodeId): void {
    this.live.delete(id);
  }

  /** After every input to a node: election safety, commit monotonicity, leader completeness. */
  observe(incarnation: string, r: Raft): void {
    this.live.set(r.id, r);
    if (r.state === "StateLeader") {
      const other = this.leaderOfTerm.get(r.term);
      if (other !== undefined && other !== r.id) {
        throw new Violation(`election safety: ${other} and ${r.id} both lead term ${r.term}`);
      }
      this.leaderOfTerm.set(r.term, r.id);
      if (this.leaderChecked.get(incarnation) !== r.term) {
        this.leaderChecked.set(incarnation, r.term);
        this.checkLeaderHasCommitted(r);
      }
    }
    const commit = r.log.committed;
    const prev = this.lastCommit.get(incarnation);
    if (prev !== undefined && commit < prev) {
      throw new Violation(`commit went backwards on ${incarnation}: ${prev} -> ${commit}`);
    }
    // The leader's commit rule (§5.4.2; AdvanceCommitIndex in the TLA+ spec): a leader moves its
    // commit index only onto an entry of its own term, earlier ones being committed indirectly.
    const ledAt = this.ledTerm.get(incarnation);
    if (r.state === "StateLeader" && ledAt === r.term && prev !== undefined && commit > prev && r.log.term(commit) !== r.term) {
      throw new Violation(`commit rule: leader ${r.id} of term ${r.term} committed up to ${commit}, an entry of term ${r.log.term(commit)}`);
    }
    if (r.state === "StateLeader") this.ledTerm.set(incarnation, r.term);
    else this.ledTerm.delete(incarnation);
    if (prev === undefined || commit > prev) this.recordCommitted(r, (prev ?? 0) + 1, commit);
    this.lastCommit.set(incarnation, commit);
  }

  private recordCommitted(r: Raft, lo: number, hi: number): void {
    const from = Math.max(lo, r.log.firstIndex() - 1, 1);
    for (let i = from; i <= hi; i++) {
      const t = r.log.term(i);
      const known = this.committedTerm[i];
      if (known) {
        if (known !== t) {
          throw new Violation(`committed entry ${i} has term ${known}, but ${r.id} committed term ${t} there`);
        }
        if (r.term >= this.commitTerm[i]!) continue;
      }
      this.committedTerm[i] = t;
      this.commitTerm[i] = r.term;
      // Leader completeness holds for the leaders of every later term, whenever they were elected.
      for (const l of this.live.values()) {
        if (l.state === "StateLeader" && l.term > r.term && i >= l.log.firstIndex() - 1 && l.log.term(i) !== t) {
          throw new Violation(
            `leader completeness: ${l.id} leads term ${l.term} without entry ${i} (term ${t}) committed by term ${r.term}`,
          );
        }
      }
    }
    if (hi > this.maxCommitted) this.maxCommitted = hi;
  }

  private checkLeaderHasCommitted(r: Raft): void {
    for (let i = Math.max(1, r.log.firstIndex() - 1); i <= this.maxCommitted; i++) {
      const t = this.committedTerm[i];
      if (t && this.commitTerm[i]! < r.term && r.log.term(i) !== t) {
        throw new Violation(
          `leader completeness: ${r.id} became leader of term ${r.term} with term ${r.log.term(i)} at ${i}, ` +
            `where term ${t} was committed by term ${this.commitTerm[i]}`,
        );
      }
    }
  }

  /** Entries a node made durable: the same (index, term) must carry the same data and history. */
  onPersist(r: Raft, entries: Entry[]): void {
    const known = r.log.firstIndex() - 1;
    for (const e of entries) {
      const prevTerm = e.index - 1 >= known ? r.log.term(e.index - 1) : -1;
      const k = `${e.index}:${e.term}`;
      const seen = this.entries.get(k);
      if (!seen) {
        this.entries.set(k, { type: e.type, data: e.data, prevTerm });
        continue;
      }
      if (seen.type !== e.type || !sameBytes(seen.data, e.data)) {
        throw new Violation(`log matching: entry ${k} on ${r.id} differs from the one seen before`);
      }
      if (seen.prevTerm >= 0 && prevTerm >= 0 && seen.prevTerm !== prevTerm) {
        throw new Violation(`log matching: entry ${k} on ${r.id} follows term ${prevTerm}, elsewhere term ${seen.prevTerm}`);
      }
      if (seen.prevTerm < 0) seen.prevTerm = prevTerm;
    }
  }

  /** State machine safety: every node applies the same entry at an index and ends in the same state. */
  onApply(id: NodeId, e: Entry, hash: number): void {
    const t = this.committedTerm[e.index];
    if (t && t !== e.term) throw new Violation(`${id} applied entry ${e.index} of term ${e.term}, committed was term ${t}`);
    const first = this.applied[e.index];
    if (!first) this.applied[e.index] = e;
    else if (first.term !== e.term || first.type !== e.type || !sameBytes(first.data, e.data)) {
      throw new Violation(`state machine safety: ${id} applied a different entry at ${e.index} (term ${e.term} vs ${first.term})`);
    }
    this.checkHash(id, e.index, hash);
  }

  onRestore(id: NodeId, s: Snapshot, hash: number): void {
    const t = this.committedTerm[s.index];
    if (t && t !== s.term) throw new Violation(`${id} restored a snapshot at ${s.index} of term ${s.term}, committed was term ${t}`);
    this.checkHash(id, s.index, hash);
  }

  private checkHash(id: NodeId, index: number, hash: number): void {
    const h = this.stateHash[index];
    if (h === undefined) this.stateHash[index] = hash;
    else if (h !== hash) throw new Violation(`state machine safety: ${id}'s state after ${index} differs from another replica's`);
  }

  /**
   * Full log matching between every pair of running nodes: where two logs hold an entry with the
   * same index and term, everything before it (that both still hold) is identical.
   */
  checkLogsMatch(rafts: Raft[]): void {
    for (let a = 0; a < rafts.length; a++) {
      for (let b = a + 1; b < rafts.length; b++) {
        const x = rafts[a]!.log;
        const y = rafts[b]!.log;
        const lo = Math.max(x.firstIndex(), y.firstIndex());
        let i = Math.min(x.lastIndex(), y.lastIndex());
        while (i >= lo && x.term(i) !== y.term(i)) i--;
        for (; i >= lo; i--) {
          if (x.term(i) !== y.term(i)) {
            throw new Violation(`log matching: ${rafts[a]!.id} and ${rafts[b]!.id} agree above ${i} but differ at ${i}`);
          }
        }
      }
    }
  }

  leaderOf(term: number): NodeId | undefined {
    return this.leaderOfTerm.get(term);
  }

  get highestCommitted(): number {
    return this.maxCommitted;
  }
}

// The log side of Raft: MemoryStorage, the unstable/stable log view, flow control, fast conflict
// backtracking, and the rule that only entries of the leader's own term commit by counting.
import { describe, expect, test } from "bun:test";
import { RaftLog } from "../../internal/raft/log.ts";
import { Inflights } from "../../internal/raft/progress.ts";
import { MemoryStorage } from "../../internal/raft/storage.ts";
import { type Entry, ErrCompacted, ErrSnapOutOfDate, ErrUnavailable, newMessage } from "../../internal/raft/types.ts";
import { TestCluster, bytes, storageWith } from "../sim/testcluster.ts";

const ent = (index: number, term: number, size = 0): Entry => ({ index, term, type: 0, data: new Uint8Array(size) });
const indexes = (es: Entry[]) => es.map((e) => e.index);
const termsOf = (log: RaftLog) => {
  const out: number[] = [];
  for (let i = log.firstIndex(); i <= log.lastIndex(); i++) out.push(log.term(i));
  return out;
};

describe("MemoryStorage", () => {
  const filled = () => {
    const s = new MemoryStorage();
    s.append([ent(1, 1), ent(2, 1), ent(3, 2), ent(4, 2), ent(5, 3)]);
    return s;
  };

  test("serves entries and terms within [firstIndex, lastIndex], size-limited but never empty", () => {
    const s = filled();
    expect([s.firstIndex(), s.lastIndex()]).toEqual([1, 5]);
    expect(indexes(s.entries(2, 5, Infinity))).toEqual([2, 3, 4]);
    expect(indexes(s.entries(1, 6, 0))).toEqual([1]);
    expect(s.term(3)).toBe(2);
    expect(s.term(0)).toBe(0);
    expect(() => s.entries(0, 2, Infinity)).toThrow(ErrCompacted);
    expect(() => s.entries(1, 7, Infinity)).toThrow(ErrUnavailable);
    expect(() => s.term(6)).toThrow(ErrUnavailable);
  });

  test("append replaces a conflicting suffix, ignores compacted entries, refuses gaps", () => {
    const s = filled();
    s.append([ent(4, 4), ent(5, 4), ent(6, 4)]);
    expect([s.term(3), s.term(4), s.term(6), s.lastIndex()]).toEqual([2, 4, 4, 6]);
    s.compact(3);
    s.append([ent(2, 1), ent(3, 2), ent(4, 5)]);
    expect([s.firstIndex(), s.term(4), s.lastIndex()]).toEqual([4, 5, 4]);
    expect(() => s.append([ent(9, 5)])).toThrow(/missing log entry/);
  });

  test("snapshots and compaction", () => {
    const s = filled();
    const snap = s.createSnapshot(3, ["a", "b"], bytes("state"));
    expect(snap).toMatchObject({ index: 3, term: 2, voters: ["a", "b"] });
    expect(() => s.createSnapshot(2, [], bytes(""))).toThrow(ErrSnapOutOfDate);
    s.compact(3);
    expect([s.firstIndex(), s.term(3)]).toEqual([4, 2]);
    expect(() => s.term(2)).toThrow(ErrCompacted);
    expect(() => s.compact(3)).toThrow(ErrCompacted);
    expect(s.initialState().voters).toEqual(["a", "b"]);
    s.applySnapshot({ index: 10, term: 4, voters: ["c"], data: bytes("newer") });
    expect([s.firstIndex(), s.lastIndex(), s.term(10)]).toEqual([11, 10, 4]);
    expect(() => s.applySnapshot({ index: 9, term: 4, voters: [], data: bytes("") })).toThrow(ErrSnapOutOfDate);
  });
});

describe("RaftLog", () => {
  const log = () => {
    const s = new MemoryStorage();
    s.append([ent(1, 1), ent(2, 1), ent(3, 2)]);
    const l = new RaftLog(s, Infinity);
    l.append([ent(4, 2), ent(5, 3)]);
    return l;
  };

  test("reads across storage and the unstable tail", () => {
    const l = log();
    expect(termsOf(l)).toEqual([1, 1, 2, 2, 3]);
    expect(indexes(l.entries(2, Infinity))).toEqual([2, 3, 4, 5]);
    expect(indexes(l.unstableEntries())).toEqual([4, 5]);
    l.stableTo(5, 9); // stale acknowledgement (term changed since): nothing becomes stable
    expect(indexes(l.unstableEntries())).toEqual([4, 5]);
    l.stableTo(4, 2);
    expect(indexes(l.unstableEntries())).toEqual([5]);
  });

  test("maybeAppend: mismatch, idempotence, truncation, never below commit", () => {
    const l = log();
    expect(l.maybeAppend(5, 2, 0, [])).toBeNull();
    expect(l.maybeAppend(3, 2, 3, [ent(4, 2)])).toBe(4);
    expect(l.lastIndex()).toBe(5);
    expect(l.committed).toBe(3);
    expect(l.maybeAppend(3, 2, 4, [ent(4, 4), ent(5, 4), ent(6, 4)])).toBe(6);
    expect(termsOf(l)).toEqual([1, 1, 2, 4, 4, 4]);
    expect(() => l.maybeAppend(2, 1, 4, [ent(3, 5)])).toThrow(/conflicts with committed/);
  });

  test("findConflictByTerm skips back to the last entry at or below a term", () => {
    const l = log(); // terms 1 1 2 2 3
    expect(l.findConflictByTerm(5, 2)).toBe(4);
    expect(l.findConflictByTerm(5, 1)).toBe(2);
    expect(l.findConflictByTerm(5, 0)).toBe(0);
    expect(l.findConflictByTerm(9, 1)).toBe(9);
  });

  test("commit moves only forward and only onto an entry of the given term", () => {
    const l = log();
    expect(l.maybeCommit(4, 3)).toBe(false);
    expect(l.maybeCommit(5, 3)).toBe(true);
    expect(l.committed).toBe(5);
    l.commitTo(2);
    expect(l.committed).toBe(5);
    expect(() => l.commitTo(6)).toThrow(/out of range/);
  });
});

describe("Inflights", () => {
  test("a ring of acknowledged-cumulatively message ends", () => {
    const f = new Inflights(3);
    f.add(10);
    f.add(20);
    f.add(30);
    expect(f.full()).toBe(true);
    expect(() => f.add(40)).toThrow();
    f.freeLE(15);
    expect([f.count, f.full()]).toEqual([2, false]);
    f.add(40); // wraps around
    f.freeLE(5); // nothing that old
    expect(f.count).toBe(3);
    f.freeFirstOne();
    expect(f.count).toBe(2);
    f.freeLE(40);
    expect(f.count).toBe(0);
    f.add(50);
    f.reset();
    expect(f.count).toBe(0);
  });
});

describe("replication", () => {
  // Figure 7 of the Raft paper: followers with missing, extra and conflicting entries. Index 1 is
  // the snapshot of every log; the leader's log is the figure's top row.
  const leaderTerms = [1, 1, 4, 4, 5, 5, 6, 6, 6];
  const followers: Record<string, number[]> = {
    a: [1, 1, 4, 4, 5, 5, 6, 6],
    b: [1, 1, 4],
    c: [1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
    d: [1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
    e: [1, 1, 4, 4, 4, 4],
    f: [1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
  };
  for (const [name, terms] of Object.entries(followers)) {
    test(`a leader converges follower (${name}) of Figure 7, skipping a term per round trip`, () => {
      const voters = ["l", "x", "y"];
      const c = new TestCluster(voters, {
        storages: { l: storageWith(voters, leaderTerms, 7), x: storageWith(voters, leaderTerms, 7), y: storageWith(voters, terms, 7) },
      });
      c.elect("l");
      const rejections = c.sent.filter((m) => m.type === "MsgAppResp" && m.from === "y" && m.reject).length;
      expect(termsOf(c.raft("y").log)).toEqual(termsOf(c.raft("l").log));
      expect(c.raft("y").log.committed).toBe(c.raft("l").log.lastIndex());
      // One index per round trip would take up to 7 rejections (f); the hints make it at most one.
      expect(rejections).toBeLessThanOrEqual(1);
    });
  }

  test("only entries of the leader's term commit by counting replicas (Figure 8)", () => {
    const voters = ["a", "b", "c"];
    // a holds an entry of term 2 nobody else has; it wins term 3 and appends its empty entry at 3.
    const c = new TestCluster(voters, {
      storages: { a: storageWith(voters, [2]), b: storageWith(voters, []), c: storageWith(voters, []) },
    });
    c.filter = (m) => m.type !== "MsgApp";
    c.elect("a");
    const a = c.raft("a");
    expect([a.term, a.log.lastIndex(), a.log.committed]).toEqual([3, 3, 1]);
    // b now stores entry 2 (term 2): a majority has it, yet it must not be committed this way.
    a.step(newMessage({ type: "MsgAppResp", from: "b", to: "a", term: 3, index: 2 }));
    expect(a.log.committed).toBe(1);
    // Once an entry of term 3 is on a majority, it commits, and entry 2 with it.
    a.step(newMessage({ type: "MsgAppResp", from: "b", to: "a", term: 3, index: 3 }));
    expect(a.log.committed).toBe(3);
  });

  test("proposals between Readys go out as one MsgApp per follower", () => {
    const c = new TestCluster(["a", "b", "c"]);
    c.elect("a");
    c.sent = [];
    for (let i = 0; i < 50; i++) c.node("a").rn.propose(bytes(`v${i}`));
    c.stabilize();
    const apps = c.sent.filter((m) => m.type === "MsgApp" && m.entries.length > 0);
    expect(apps.map((m) => [m.to, m.entries.length])).toEqual([
      ["b", 50],
      ["c", 50],
    ]);
  });

  test("pipelining stops at the inflight window; a heartbeat response reopens it", () => {
    const c = new TestCluster(["a", "b", "c"], { maxInflightMsgs: 2 });
    c.elect("a");
    c.filter = (m) => m.type !== "MsgAppResp";
    c.sent = [];
    // One proposal per Ready, so each would be its own MsgApp.
    for (let i = 0; i < 5; i++) {
      c.node("a").rn.propose(bytes(`v${i}`));
      c.stabilize();
    }
    const toB = c.sent.filter((m) => m.type === "MsgApp" && m.to === "b" && m.entries.length > 0);
    expect(toB.length).toBe(2);
    expect(c.node("a").rn.status().progress.b).toMatchObject({ state: "StateReplicate", paused: true });
    c.filter = null;
    c.tick(1);
    expect(c.raft("b").log.lastIndex()).toBe(c.raft("a").log.lastIndex());
    expect(c.raft("b").log.committed).toBe(c.raft("a").log.lastIndex());
  });

  test("a message carries at most maxSizePerMsg bytes of entries (but at least one entry)", () => {
    const c = new TestCluster(["a", "b", "c"], { maxSizePerMsg: 100 });
    c.elect("a");
    c.isolate("b");
    for (let i = 0; i < 6; i++) c.node("a").rn.propose(new Uint8Array(40));
    c.stabilize();
    c.sent = [];
    c.heal();
    c.tick(1);
    const apps = c.sent.filter((m) => m.type === "MsgApp" && m.to === "b" && m.entries.length > 0);
    expect(apps.length).toBeGreaterThanOrEqual(3);
    for (const m of apps) expect(m.entries.length).toBeLessThanOrEqual(1);
    expect(c.raft("b").log.lastIndex()).toBe(c.raft("a").log.lastIndex());
  });
});

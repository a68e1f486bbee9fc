// The simulator's own parts: a checker that passes everything proves nothing, so the
// linearizability checker and the crash model are tested against known answers.
import { describe, expect, test } from "bun:test";
import type { Entry } from "../../internal/raft/types.ts";
import { SimDisk } from "../sim/disk.ts";
import { type HistoryOp, checkHistory, checkKey } from "../sim/linearizability.ts";
import { Prng } from "../sim/prng.ts";

let nextId = 0;
const w = (value: number, call: number, ret: number, key = "k"): HistoryOp => ({ id: nextId++, client: 0, key, kind: "write", value, call, ret });
const r = (out: number | null, call: number, ret: number, key = "k"): HistoryOp => ({ id: nextId++, client: 0, key, kind: "read", out, call, ret });
const cas = (expect: number | null, value: number, ok: boolean | undefined, call: number, ret: number): HistoryOp => ({
  id: nextId++,
  client: 0,
  key: "k",
  kind: "cas",
  expect,
  value,
  ...(ok === undefined ? {} : { ok }),
  call,
  ret,
});

describe("linearizability checker", () => {
  test("sequential histories: right and wrong reads", () => {
    expect(checkKey([w(1, 1, 2), r(1, 3, 4)], 1e6)).toBe("ok");
    expect(checkKey([r(null, 1, 2), w(1, 3, 4), r(null, 5, 6)], 1e6)).toBe("fail");
    expect(checkKey([w(1, 1, 2), w(2, 3, 4), r(1, 5, 6)], 1e6)).toBe("fail");
  });

  test("concurrent operations may take effect in either order, but consistently", () => {
    // Two overlapping writes; readers after both may see either, but not both in turn.
    expect(checkKey([w(1, 1, 4), w(2, 2, 3), r(1, 5, 6)], 1e6)).toBe("ok");
    expect(checkKey([w(1, 1, 4), w(2, 2, 3), r(2, 5, 6)], 1e6)).toBe("ok");
    expect(checkKey([w(1, 1, 4), w(2, 2, 3), r(1, 5, 6), r(2, 7, 8)], 1e6)).toBe("fail");
    // A read overlapping a write may see the old or the new value...
    expect(checkKey([w(1, 1, 2), w(2, 3, 6), r(1, 4, 5), r(2, 7, 8)], 1e6)).toBe("ok");
    // ...but once a read saw the new value, a later read may not see the old one.
    expect(checkKey([w(1, 1, 2), w(2, 3, 8), r(2, 4, 5), r(1, 6, 7)], 1e6)).toBe("fail");
  });

  test("compare-and-swap: successes and failures constrain the order", () => {
    expect(checkKey([w(1, 1, 2), cas(1, 2, true, 3, 4), r(2, 5, 6)], 1e6)).toBe("ok");
    expect(checkKey([w(1, 1, 2), cas(1, 2, false, 3, 4)], 1e6)).toBe("fail");
    expect(checkKey([cas(null, 5, true, 1, 2), cas(null, 6, true, 3, 4)], 1e6)).toBe("fail");
    // Concurrent: the failing cas came after the successful one.
    expect(checkKey([cas(null, 5, true, 1, 4), cas(null, 6, false, 2, 3)], 1e6)).toBe("ok");
  });

  test("operations of unknown outcome may or may not have happened", () => {
    expect(checkKey([w(1, 1, Infinity), r(null, 2, 3), r(1, 4, 5), r(1, 6, 7)], 1e6)).toBe("ok");
    expect(checkKey([w(1, 1, Infinity), r(null, 2, 3)], 1e6)).toBe("ok");
    expect(checkKey([w(1, 1, Infinity), r(1, 2, 3), r(null, 4, 5)], 1e6)).toBe("fail");
    expect(checkKey([w(1, 1, 2), cas(1, 3, undefined, 3, Infinity), r(3, 4, 5)], 1e6)).toBe("ok");
  });

  test("keys are checked separately; the failing key comes with the prefix that fails", () => {
    const ok = checkHistory([w(1, 1, 2, "a"), r(1, 3, 4, "a"), w(7, 5, 6, "b"), r(7, 7, 8, "b")]);
    expect(ok).toEqual({ ok: true, inconclusive: [] });
    const bad = checkHistory([w(1, 1, 2, "a"), w(2, 3, 4, "b"), r(null, 5, 6, "b"), w(3, 7, 8, "b"), r(3, 9, 10, "b")]);
    expect(bad.ok).toBe(false);
    if (!bad.ok) {
      expect(bad.key).toBe("b");
      expect(bad.history.map((op) => op.call)).toEqual([3, 5]);
    }
  });

  test("the search is bounded: too many candidate orders is inconclusive, not a verdict", () => {
    // Thirty concurrent writes and no read to prune them: 2^30 linearized subsets.
    const ops = Array.from({ length: 30 }, (_, i) => w(i, i, 100 + i));
    expect(checkKey(ops.concat(r(-1, 200, 201)), 10_000)).toBe("unknown");
  });
});

describe("simulated disk", () => {
  const ent = (index: number, term: number): Entry => ({ index, term, type: 0, data: new Uint8Array(0) });

  test("a crash keeps what was synced and a prefix of the rest", () => {
    for (let seed = 1; seed <= 50; seed++) {
      const d = new SimDisk();
      d.write(undefined, [ent(1, 1), ent(2, 1)], { term: 1, vote: "a", commit: 0 });
      d.sync();
      d.write(undefined, [ent(3, 1), ent(4, 1)], { term: 1, vote: "a", commit: 4 });
      d.crash(new Prng(seed));
      const s = d.load();
      expect(s.lastIndex()).toBeGreaterThanOrEqual(2);
      const hs = s.initialState().hardState;
      // The hard state record comes after the entries: a commit of 4 implies both survived.
      if (hs.commit === 4) expect(s.lastIndex()).toBe(4);
      expect(hs.vote).toBe("a");
    }
  });

  test("a leader's snapshot replaces the log; a local snapshot keeps entries after the compaction point", () => {
    const d = new SimDisk();
    d.write(undefined, [ent(1, 1), ent(2, 1), ent(3, 2)], undefined);
    d.sync();
    d.saveSnapshot({ index: 2, term: 1, voters: ["a"], data: new Uint8Array(0) }, 1);
    expect([d.load().firstIndex(), d.load().lastIndex()]).toEqual([3, 3]);
    d.write({ index: 9, term: 3, voters: ["a"], data: new Uint8Array(0) }, [], { term: 3, vote: "", commit: 9 });
    d.sync();
    expect([d.load().firstIndex(), d.load().lastIndex()]).toEqual([10, 9]);
  });

  test("the PRNG is a pure function of its seed", () => {
    const a = new Prng(99);
    const b = new Prng(99);
    const xs = Array.from({ length: 5 }, () => a.u32());
    expect(Array.from({ length: 5 }, () => b.u32())).toEqual(xs);
    expect(new Set(xs).size).toBe(5);
    const f = new Prng(1);
    for (let i = 0; i < 1000; i++) {
      const x = f.next();
      expect(x >= 0 && x < 1).toBe(true);
    }
  });
});

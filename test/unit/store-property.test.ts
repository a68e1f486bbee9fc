// Random operation sequences (seeded, so a failure replays) against the store's invariants:
// +1 index per success and none on failure, failures change nothing, createdIndex <= modifiedIndex,
// a contiguous history, events that agree with the tree, watchers that get exactly the first
// matching event (checked against an independent matcher), and lossless snapshots.
import { describe, expect, test } from "bun:test";
import { EtcdError } from "../../internal/kv/errors.ts";
import { Store } from "../../internal/kv/store.ts";
import type { Command, StoreEvent } from "../../internal/kv/types.ts";
import { seededRand } from "../../internal/random/random.ts";

const T0 = Date.UTC(2026, 0, 1);
type Cmd = Exclude<Command, { op: "sync" }>;

/** A history event as the snapshot stores it. */
interface Ev {
  action: string;
  index: number;
  key: string;
  dir: boolean;
  refresh: boolean;
}

interface SnapTree {
  /** every node path → [createdIndex, modifiedIndex, expireAt, value | null for dirs] */
  nodes: Map<string, [number, number, number, string | null]>;
  history: Ev[];
}

function readSnapshot(text: string): SnapTree {
  const s = JSON.parse(text) as { root: unknown[]; history: unknown[][] };
  const nodes = new Map<string, [number, number, number, string | null]>();
  const walk = (dir: string, kids: unknown[]) => {
    for (let i = 0; i < kids.length; i += 2) {
      const key = (dir === "/" ? "/" : dir + "/") + (kids[i] as string);
      const [ci, mi, exp, body] = kids[i + 1] as [number, number, number, string | unknown[]];
      nodes.set(key, [ci, mi, exp, typeof body === "string" ? body : null]);
      if (typeof body !== "string") walk(key, body);
    }
  };
  walk("/", s.root);
  const history = s.history.map((h) => ({
    action: h[0] as string,
    index: h[1] as number,
    key: h[2] as string,
    dir: h[3] === 1,
    refresh: h[7] === 1,
  }));
  return { nodes, history };
}

/** The watch rules written out independently of the store's matcher (component by component). */
function oracleMatch(e: Ev, key: string, recursive: boolean): boolean {
  if (e.refresh) return false;
  if (e.key === key) return true;
  const ek = e.key.split("/").filter(Boolean);
  const wk = key.split("/").filter(Boolean);
  const below = (a: string[], b: string[]) => a.length > b.length && b.every((c, i) => a[i] === c);
  if (recursive && below(ek, wk) && !ek.slice(wk.length).some((c) => c.startsWith("_"))) return true;
  return (e.action === "delete" || e.action === "expire") && e.dir && below(wk, ek);
}

const NAMES = ["a", "b", "_h", "c"];

function randomKey(r: () => number): string {
  const depth = 1 + Math.floor(r() * 3);
  let k = "";
  for (let i = 0; i < depth; i++) k += "/" + NAMES[Math.floor(r() * NAMES.length)];
  return k;
}

interface WatchRec {
  key: string;
  recursive: boolean;
  since: number;
  got: StoreEvent[];
}

function runSeed(seed: number, steps: number): void {
  const r = seededRand(seed);
  const pick = <T,>(xs: T[]): T => xs[Math.floor(r() * xs.length)]!;
  const s = new Store();
  let now = T0;
  let lastSync = 0;
  const streamed: number[] = [];
  s.watch("/", { recursive: true, stream: true, sinceIndex: 0 }, (e) => streamed.push(e.index));
  const noStats = (t: string) => JSON.stringify({ ...JSON.parse(t), stats: null });

  for (let step = 0; step < steps; step++) {
    now += Math.floor(r() * 700);
    const key = randomKey(r);
    const ttl = () => (r() < 0.3 ? now + Math.floor(r() * 3000) : r() < 0.1 ? 1000 : null);
    const current = (): { value: string; mi: number } | null => {
      try {
        const n = s.get(key, false, false).toJSON(now).node;
        return { value: n.value ?? "", mi: n.modifiedIndex ?? 0 };
      } catch {
        return null;
      }
    };
    const cur = current();
    const roll = r();
    let cmd: Cmd | { op: "sync"; time: number } | { op: "watch"; recursive: boolean; since: number };
    if (roll < 0.22) cmd = { op: "set", key, value: "v" + step, dir: r() < 0.15, expireAt: ttl(), refresh: r() < 0.05 };
    else if (roll < 0.34) cmd = { op: "create", key, value: "c" + step, dir: r() < 0.2, unique: r() < 0.3, expireAt: ttl() };
    else if (roll < 0.44) cmd = { op: "update", key, value: pick([null, "", "u" + step]), expireAt: ttl(), refresh: r() < 0.3 };
    else if (roll < 0.54) {
      cmd = {
        op: "compareAndSwap",
        key,
        value: "s" + step,
        prevValue: r() < 0.5 ? (cur && r() < 0.7 ? cur.value : "nope") : null,
        prevIndex: r() < 0.5 ? (cur && r() < 0.7 ? cur.mi : 99999) : 0,
        expireAt: ttl(),
        refresh: r() < 0.1,
      };
    } else if (roll < 0.64) cmd = { op: "delete", key: r() < 0.1 ? "/" : key, dir: r() < 0.5, recursive: r() < 0.4 };
    else if (roll < 0.7) cmd = { op: "compareAndDelete", key, prevValue: cur && r() < 0.6 ? cur.value : "x", prevIndex: 0 };
    else if (roll < 0.76) cmd = { op: "get", key, recursive: r() < 0.5, sorted: r() < 0.5 };
    else if (roll < 0.86) cmd = { op: "sync", time: now };
    else cmd = { op: "watch", recursive: r() < 0.5, since: r() < 0.5 ? 0 : Math.max(1, s.index - Math.floor(r() * 20)) };

    const before = s.index;
    const snapBefore = s.toSnapshot();
    if (cmd.op === "sync") {
      s.deleteExpired(cmd.time);
      lastSync = cmd.time;
      const h = readSnapshot(s.toSnapshot()).history.filter((e) => e.index > before);
      expect(h.length).toBe(s.index - before);
      for (const e of h) expect(e.action).toBe("expire");
    } else if (cmd.op === "watch") {
      const h = s.watch(key, { recursive: cmd.recursive, stream: false, sinceIndex: cmd.since }, () => {});
      expect(h.etcdIndex).toBe(before);
    } else {
      let e: StoreEvent | undefined;
      try {
        e = s.apply(cmd);
      } catch (err) {
        if (!(err instanceof EtcdError)) throw err;
        expect(err.index).toBe(before);
        expect(s.index).toBe(before);
        expect(noStats(s.toSnapshot())).toBe(noStats(snapBefore));
      }
      if (e !== undefined) {
        if (cmd.op === "get") {
          expect(s.index).toBe(before);
          expect(e.etcdIndex).toBe(before);
        } else {
          expect(s.index).toBe(before + 1);
          expect(e.index).toBe(s.index);
          expect(e.etcdIndex).toBe(s.index);
          const j = e.toJSON(now);
          expect(j.node.modifiedIndex).toBe(s.index);
          expect(j.node.createdIndex!).toBeLessThanOrEqual(s.index);
          if (cmd.op === "set" || cmd.op === "create" || cmd.op === "update" || cmd.op === "compareAndSwap") {
            const g = s.get(e.key, false, false).toJSON(now).node;
            expect(g.value).toBe(j.node.value);
            expect(g.dir).toBe(j.node.dir);
            expect(g.expiration).toBe(j.node.expiration);
            if (!g.dir) expect(g.modifiedIndex).toBe(s.index);
          } else {
            expect(() => s.get(e!.key, false, false)).toThrow(EtcdError);
          }
        }
      }
    }

    // tree invariants
    const snap = readSnapshot(s.toSnapshot());
    for (const [k, [ci, mi, exp]] of snap.nodes) {
      expect(ci).toBeGreaterThanOrEqual(1);
      expect(ci).toBeLessThanOrEqual(mi);
      expect(mi).toBeLessThanOrEqual(s.index);
      if (exp !== 0 && exp <= lastSync) throw new Error(`${k} should have expired at sync ${lastSync} (expireAt ${exp})`);
    }
    const idx = snap.history.map((e) => e.index);
    expect(idx.length).toBe(Math.min(s.index, 1000));
    if (idx.length > 0) {
      expect(idx[idx.length - 1]).toBe(s.index);
      for (let i = 1; i < idx.length; i++) expect(idx[i]).toBe(idx[i - 1]! + 1);
    }
    const next = s.nextExpiry();
    const ttls = [...snap.nodes.values()].map((n) => n[2]).filter((x) => x !== 0);
    expect(next).toBe(ttls.length === 0 ? null : Math.min(...ttls));

    if (step % 25 === 0) {
      const text = s.toSnapshot();
      const restored = Store.fromSnapshot(text);
      expect(restored.toSnapshot()).toBe(text);
      expect(JSON.stringify(restored.get("/", true, true).toJSON(now))).toBe(JSON.stringify(s.get("/", true, true).toJSON(now)));
    }
  }

  const all = readSnapshot(s.toSnapshot()).history;
  expect(all.length).toBe(s.index); // the run is short enough for the whole history to be kept
  // the stream watcher on "/" saw every visible, non-refresh change in order
  expect(streamed).toEqual(all.filter((e) => oracleMatch(e, "/", true)).map((e) => e.index));
}

/** Watch deliveries need the microtasks of history replays to run, so the check is async. */
async function runSeedWithWatches(seed: number, steps: number): Promise<void> {
  const r = seededRand(seed ^ 0x5eed);
  const s = new Store();
  let now = T0;
  const watches: WatchRec[] = [];
  for (let step = 0; step < steps; step++) {
    now += Math.floor(r() * 500);
    const key = randomKey(r);
    const roll = r();
    try {
      if (roll < 0.35) s.apply({ op: "set", key, value: "v", dir: r() < 0.2, expireAt: r() < 0.3 ? now + Math.floor(r() * 2000) : null, refresh: r() < 0.05 });
      else if (roll < 0.45) s.apply({ op: "update", key, value: null, expireAt: now + 1500, refresh: r() < 0.5 });
      else if (roll < 0.6) s.apply({ op: "delete", key, dir: true, recursive: r() < 0.6 });
      else if (roll < 0.7) s.deleteExpired(now);
      else {
        const recursive = r() < 0.5;
        const sinceIndex = r() < 0.5 ? 0 : Math.max(1, s.index - Math.floor(r() * 30));
        const w: WatchRec = { key, recursive, since: sinceIndex === 0 ? s.index + 1 : sinceIndex, got: [] };
        s.watch(key, { recursive, stream: false, sinceIndex }, (e) => w.got.push(e));
        watches.push(w);
      }
    } catch (err) {
      if (!(err instanceof EtcdError)) throw err;
    }
    if (step % 50 === 0) await Promise.resolve();
  }
  await new Promise((res) => setTimeout(res, 0));
  const all = readSnapshot(s.toSnapshot()).history;
  expect(all.length).toBe(s.index);
  let fired = 0;
  for (const w of watches) {
    const want = all.find((e) => e.index >= w.since && oracleMatch(e, w.key, w.recursive));
    expect({ w: w.key, rec: w.recursive, since: w.since, got: w.got.map((e) => e.index) }).toEqual({
      w: w.key,
      rec: w.recursive,
      since: w.since,
      got: want === undefined ? [] : [want.index],
    });
    if (want) fired++;
  }
  // the run must exercise both outcomes to mean anything
  expect(fired).toBeGreaterThan(0);
  expect(fired).toBeLessThan(watches.length);
  expect(s.stats().watchers).toBe(watches.length - fired);
}

describe("store properties (seeded random operations)", () => {
  for (const seed of [1, 2, 3, 42, 1234, 98765]) {
    test(`invariants, seed ${seed}`, () => {
      runSeed(seed, 400);
    });
    test(`watchers get exactly the first matching event, seed ${seed}`, async () => {
      await runSeedWithWatches(seed, 600);
    });
  }
});

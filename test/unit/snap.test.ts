import { afterEach, describe, expect, spyOn, test } from "bun:test";
import { existsSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Snapshotter, log as snapLog } from "../../internal/snap/snapshotter.ts";
import { tempDir } from "../helpers/procs.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function snapDir(): string {
  const d = tempDir("coreos-snap-");
  dirs.push(d);
  return join(d, "member", "snap");
}

const snap = (term: number, index: number) => ({ term, index, data: enc.encode(JSON.stringify({ term, index, root: "x".repeat(100) })) });

describe("Snapshotter", () => {
  test("nothing saved: loadNewest is null", async () => {
    expect(await new Snapshotter(snapDir()).loadNewest()).toBeNull();
  });

  test("saves atomically under <term>-<index>.snap and loads the newest", async () => {
    const dir = snapDir();
    const s = new Snapshotter(dir);
    await s.save(snap(1, 100));
    await s.save(snap(2, 300));
    await s.save(snap(2, 200)); // saved later but older
    expect(readdirSync(dir).sort()).toEqual([
      "0000000000000001-0000000000000064.snap",
      "0000000000000002-00000000000000c8.snap",
      "0000000000000002-000000000000012c.snap",
    ]);
    const got = await new Snapshotter(dir).loadNewest();
    expect(got).not.toBeNull();
    expect([got!.term, got!.index]).toEqual([2, 300]);
    expect(JSON.parse(dec.decode(got!.data))).toEqual({ term: 2, index: 300, root: "x".repeat(100) });
  });

  for (const damage of ["flipped byte", "truncated", "empty"] as const) {
    test(`a damaged newest snapshot (${damage}) is renamed .broken and the older one loads`, async () => {
      const dir = snapDir();
      const s = new Snapshotter(dir);
      await s.save(snap(1, 10));
      await s.save(snap(1, 20));
      const newest = join(dir, "0000000000000001-0000000000000014.snap");
      if (damage === "flipped byte") {
        const b = readFileSync(newest);
        b[b.length - 5]! ^= 1;
        writeFileSync(newest, b);
      } else truncateSync(newest, damage === "empty" ? 0 : 40);

      const warn = spyOn(snapLog, "warn");
      try {
        const got = await s.loadNewest();
        expect([got?.term, got?.index]).toEqual([1, 10]);
        expect(existsSync(newest)).toBe(false);
        expect(existsSync(`${newest}.broken`)).toBe(true);
        expect(warn).toHaveBeenCalledTimes(1);
        expect(String(warn.mock.calls[0]![0])).toContain(newest);
        // set aside for good: the next load goes straight to the good one
        warn.mockClear();
        expect((await s.loadNewest())?.index).toBe(10);
        expect(warn).not.toHaveBeenCalled();
      } finally {
        warn.mockRestore();
      }
    });
  }

  test("all damaged: null, every file set aside", async () => {
    const dir = snapDir();
    const s = new Snapshotter(dir);
    await s.save(snap(1, 1));
    await s.save(snap(1, 2));
    for (const n of readdirSync(dir)) truncateSync(join(dir, n), 20);
    const warn = spyOn(snapLog, "warn");
    try {
      expect(await s.loadNewest()).toBeNull();
      expect(warn).toHaveBeenCalledTimes(2);
    } finally {
      warn.mockRestore();
    }
    expect(readdirSync(dir).every((n) => n.endsWith(".snap.broken"))).toBe(true);
  });

  test("keeps the newest 5 and clears leftover temp files", async () => {
    const dir = snapDir();
    const s = new Snapshotter(dir);
    await s.save(snap(1, 1));
    writeFileSync(join(dir, "0000000000000001-0000000000000063.snap.tmp"), "half written");
    // concurrent saves are queued, not interleaved
    await Promise.all([2, 3, 4, 5, 6, 7, 8].map((i) => s.save(snap(1, i))));
    expect(readdirSync(dir).sort()).toEqual([4, 5, 6, 7, 8].map((i) => `0000000000000001-000000000000000${i}.snap`));
    expect((await s.loadNewest())?.index).toBe(8);
  });

  test("a 20 MB snapshot round-trips and logs its size at start and its time at the end", async () => {
    const dir = snapDir();
    const s = new Snapshotter(dir);
    const data = new Uint8Array(20 << 20);
    for (let i = 0; i < data.length; i += 4096) data[i] = (i / 4096) & 0xff;
    const info = spyOn(snapLog, "info");
    try {
      await s.save({ term: 3, index: 100000, data });
      expect(info).toHaveBeenCalledTimes(2);
      expect(String(info.mock.calls[0]![0])).toContain(`${data.length} bytes`);
      expect(String(info.mock.calls[1]![0])).toMatch(/in \d+ ms$/);
    } finally {
      info.mockRestore();
    }
    const got = await s.loadNewest();
    expect(got?.data.length).toBe(data.length);
    expect(Buffer.compare(Buffer.from(got!.data), Buffer.from(data))).toBe(0);
  });

  test("saveChunks: pieces of text and bytes make the same file save() makes of their concatenation", async () => {
    const dir = snapDir();
    const s = new Snapshotter(dir);
    const pieces: Array<string | Uint8Array> = ['{"a":1}\n', enc.encode("raw bytes\n"), "", "caf\u00e9 \u{1F600}\n", "end"];
    await s.saveChunks({ term: 1, index: 5, chunks: pieces });
    const all = Buffer.concat(pieces.map((p) => (typeof p === "string" ? enc.encode(p) : p)));
    const other = snapDir();
    await new Snapshotter(other).save({ term: 1, index: 5, data: all });
    const name = "0000000000000001-0000000000000005.snap";
    expect(readFileSync(join(dir, name))).toEqual(readFileSync(join(other, name)));
    const got = await s.loadNewest();
    expect(Buffer.from(got!.data)).toEqual(all);
    const ref = await s.newest();
    expect([ref!.index, ref!.term, ref!.size]).toEqual([5, 1, all.length]);
    expect([...ref!.lines()]).toEqual(['{"a":1}', "raw bytes", "caf\u00e9 \u{1F600}", "end"]);
  });

  test("saveChunks takes every piece before it returns, and a failing source leaves nothing behind", async () => {
    const dir = snapDir();
    const s = new Snapshotter(dir);
    let taken = 0;
    function* gen(fail: boolean): Generator<string> {
      for (let i = 0; i < 100; i++) {
        taken++;
        yield `line ${i}\n`;
      }
      if (fail) throw new Error("source broke");
    }
    const p = s.saveChunks({ term: 1, index: 1, chunks: gen(false) });
    expect(taken).toBe(100);
    await p;
    expect(s.saveChunks({ term: 1, index: 2, chunks: gen(true) })).rejects.toThrow("source broke");
    await Bun.sleep(0);
    expect(readdirSync(dir)).toEqual(["0000000000000001-0000000000000001.snap"]);
    expect((await s.newest())?.index).toBe(1);
  });

  test("text far larger than the write block, multi-byte characters across every edge, read back by lines", async () => {
    const dir = snapDir();
    const s = new Snapshotter(dir);
    const lines = Array.from({ length: 3000 }, (_, i) => `${i}:` + "\u00e9\u{1F600}x".repeat(i % 400));
    const text = lines.join("\n");
    // 700,001 falls inside a surrogate pair: the pair must come out whole, as one 4-byte character
    expect(text.charCodeAt(700_000)).toBeGreaterThanOrEqual(0xd800);
    expect(text.charCodeAt(700_000)).toBeLessThan(0xdc00);
    await s.saveChunks({ term: 2, index: 9, chunks: [text.slice(0, 700_001), text.slice(700_001)] });
    const ref = await s.newest();
    expect(ref!.size).toBe(enc.encode(text).length);
    expect(ref!.size).toBeGreaterThan(3 << 20); // several read pieces
    const back = [...ref!.lines()];
    expect(back.length).toBe(lines.length);
    expect(back).toEqual(lines);
  });

  test("a save queued behind another keeps its temp file through the other's purge", async () => {
    const dir = snapDir();
    const s = new Snapshotter(dir);
    const first = s.save(snap(1, 1));
    const second = s.saveChunks({ term: 1, index: 2, chunks: ["second"] });
    await Promise.all([first, second]);
    expect(readdirSync(dir).sort()).toEqual(["0000000000000001-0000000000000001.snap", "0000000000000001-0000000000000002.snap"]);
    expect(dec.decode((await s.loadNewest())!.data)).toBe("second");
  });

  test("newest() verifies in pieces: a damaged newest is set aside; damage after the check fails the read", async () => {
    const dir = snapDir();
    const s = new Snapshotter(dir);
    await s.saveChunks({ term: 1, index: 1, chunks: ["old\n", "x".repeat(3 << 20)] });
    await s.saveChunks({ term: 1, index: 2, chunks: ["new\n", "y".repeat(3 << 20)] });
    const newest = join(dir, "0000000000000001-0000000000000002.snap");
    const b = readFileSync(newest);
    b[b.length - 100]! ^= 1;
    writeFileSync(newest, b);
    const warn = spyOn(snapLog, "warn");
    try {
      const ref = await s.newest();
      expect(ref?.index).toBe(1);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(existsSync(`${newest}.broken`)).toBe(true);
      const old = join(dir, "0000000000000001-0000000000000001.snap");
      const c = readFileSync(old);
      c[c.length - 1]! ^= 1;
      writeFileSync(old, c);
      expect(() => [...ref!.lines()]).toThrow(/changed after it was checked \(crc mismatch\)/);
    } finally {
      warn.mockRestore();
    }
  });
});

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
});

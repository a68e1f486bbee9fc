import { describe, expect, spyOn, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Entry, HardState } from "../../internal/kv/types.ts";
import { Wal, WalCorruptError, log as walLog } from "../../internal/wal/wal.ts";
import { entry, locate, walDirs, walFiles } from "../helpers/wal.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const SEG = 4096;
const META = enc.encode('{"id":"8e9e05c52164694d","cluster":"cdf818194e3a8c32"}');

const walDir = walDirs("coreos-wal-");

const hs = (term: number, commit: number, vote = "1"): HardState => ({ term, vote, commit });

function snapshotFiles(dir: string): Map<string, Buffer> {
  return new Map(readdirSync(dir).map((n) => [n, readFileSync(join(dir, n))]));
}

function expectEntries(got: Entry[], want: Entry[]): void {
  expect(got.map((e) => [e.index, e.term, e.type, dec.decode(e.data)])).toEqual(
    want.map((e) => [e.index, e.term, e.type, dec.decode(e.data)]),
  );
}

async function fill(wal: Wal, from: number, to: number, term = 1): Promise<Entry[]> {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) {
    const e = entry(i, term);
    out.push(e);
    await wal.save(hs(term, i - 1), [e]);
  }
  return out;
}

describe("Wal", () => {
  test("create builds aside, then refuses to overwrite", async () => {
    const dir = walDir();
    expect(Wal.exists(dir)).toBe(false);
    const wal = await Wal.create(dir, META, { segmentSize: SEG });
    expect(Wal.exists(dir)).toBe(true);
    expect(existsSync(`${dir}.tmp`)).toBe(false);
    expect(walFiles(dir)).toEqual(["0000000000000000-0000000000000000.wal"]);
    await wal.close();
    expect(Wal.create(dir, META)).rejects.toThrow(/already/);
    const r = await Wal.open(dir, { index: 0, term: 0 }, { segmentSize: SEG });
    expect(dec.decode(r.metadata)).toBe(dec.decode(META));
    expect(r.hardState).toBeNull();
    expect(r.entries).toEqual([]);
    await r.wal.close();
  });

  test("create replaces a half-built WAL from a crash but never deletes foreign files", async () => {
    const dir = walDir();
    mkdirSync(`${dir}.tmp`, { recursive: true });
    writeFileSync(join(`${dir}.tmp`, "0000000000000000-0000000000000000.wal"), "half made");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "notes.txt"), "mine");
    expect(Wal.create(dir, META)).rejects.toThrow(/cannot create/);
    expect(readFileSync(join(dir, "notes.txt"), "utf8")).toBe("mine");
    rmSync(join(dir, "notes.txt"));
    const wal = await Wal.create(dir, META);
    await wal.close();
    expect(existsSync(`${dir}.tmp`)).toBe(false);
    expect(walFiles(dir)).toEqual(["0000000000000000-0000000000000000.wal"]);
  });

  test("round trip of entries, hard state and metadata across segments, then appends after reopen", async () => {
    const dir = walDir();
    const wal = await Wal.create(dir, META, { segmentSize: SEG });
    const want = await fill(wal, 1, 60);
    await wal.save(hs(1, 60), []);
    await wal.close();

    const files = walFiles(dir);
    expect(files.length).toBeGreaterThanOrEqual(3);
    // <seq>-<firstIndex>: consecutive seqs, each segment's name gives its first entry's index
    files.forEach((name, i) => {
      const [seq, first] = name.replace(".wal", "").split("-").map((h) => parseInt(h, 16));
      expect(seq).toBe(i);
      if (i > 0) expect(locate(dir, first!).file).toBe(join(dir, name));
    });
    expect(readdirSync(dir).filter((n) => n.endsWith(".tmp"))).toEqual([]);

    const r = await Wal.open(dir, { index: 0, term: 0 }, { segmentSize: SEG });
    expect(dec.decode(r.metadata)).toBe(dec.decode(META));
    expect(r.hardState).toEqual(hs(1, 60));
    expectEntries(r.entries, want);
    want.push(...(await fill(r.wal, 61, 80, 2)));
    await r.wal.close();

    const r2 = await Wal.open(dir, { index: 0, term: 0 }, { segmentSize: SEG });
    expectEntries(r2.entries, want);
    expect(r2.hardState).toEqual(hs(2, 79));
    await r2.wal.close();
  });

  test("group commit: 100 concurrent saves share far fewer fdatasyncs", async () => {
    const dir = walDir();
    let hooked = 0;
    const wal = await Wal.create(dir, META, { onSync: () => hooked++ });
    const before = wal.stats.syncs;
    const want = Array.from({ length: 100 }, (_, i) => entry(i + 1));
    await Promise.all(want.map((e) => wal.save(hs(1, e.index - 1), [e])));
    const syncs = wal.stats.syncs - before;
    expect(syncs).toBeGreaterThanOrEqual(1);
    expect(syncs).toBeLessThanOrEqual(3);
    expect(hooked).toBe(wal.stats.syncs);
    await wal.close();
    const r = await Wal.open(dir, { index: 0, term: 0 });
    expectEntries(r.entries, want);
    expect(r.hardState).toEqual(hs(1, 99));
    await r.wal.close();
  });

  test("group commit: saves made while an fsync is in flight go out in one write and one fdatasync", async () => {
    const dir = walDir();
    const wal = await Wal.create(dir, META);
    const { syncs, writes } = wal.stats;
    const first = wal.save(hs(1, 0), [entry(1)]);
    await Promise.resolve(); // the first save's write is now under way
    const rest = Array.from({ length: 50 }, (_, i) => wal.save(hs(1, i + 1), [entry(i + 2)]));
    await Promise.all([first, ...rest]);
    expect(wal.stats.writes - writes).toBe(2);
    expect(wal.stats.syncs - syncs).toBe(2);
    await wal.close();
    const r = await Wal.open(dir, { index: 0, term: 0 });
    expect(r.entries.map((e) => e.index)).toEqual(Array.from({ length: 51 }, (_, i) => i + 1));
    await r.wal.close();
  });

  test("MustSync: a commit-only change is written but not synced; term or vote changes are synced", async () => {
    const dir = walDir();
    const wal = await Wal.create(dir, META);
    await wal.save(hs(1, 0), [entry(1)]);
    const s0 = { ...wal.stats };
    await wal.save(hs(1, 1), []);
    expect(wal.stats.writes).toBe(s0.writes + 1);
    expect(wal.stats.syncs).toBe(s0.syncs);
    await wal.save(hs(1, 1), []); // unchanged: nothing to write
    expect(wal.stats.writes).toBe(s0.writes + 1);
    await wal.save(hs(2, 1), []);
    expect(wal.stats.syncs).toBe(s0.syncs + 1);
    await wal.save(hs(2, 1, "8e9e05c52164694d"), []);
    expect(wal.stats.syncs).toBe(s0.syncs + 2);
    await wal.save(hs(2, 5, "8e9e05c52164694d"), []);
    expect(wal.stats.syncs).toBe(s0.syncs + 2);
    await wal.close();
    const r = await Wal.open(dir, { index: 0, term: 0 });
    expect(r.hardState).toEqual(hs(2, 5, "8e9e05c52164694d"));
    await r.wal.close();
  });

  test("torn tail cut short mid-record: valid prefix, one warning, later appends survive", async () => {
    const dir = walDir();
    const wal = await Wal.create(dir, META, { segmentSize: SEG });
    const want = await fill(wal, 1, 10);
    await wal.save(hs(1, 10), [entry(11, 1, 1500)]);
    await wal.close();
    const at = locate(dir, 11);
    expect(at.file).toBe(join(dir, walFiles(dir).at(-1)!));
    truncateSync(at.file, at.dataAt + 700);

    const warn = spyOn(walLog, "warn");
    try {
      const r = await Wal.open(dir, { index: 0, term: 0 }, { segmentSize: SEG });
      expectEntries(r.entries, want);
      expect(r.hardState).toEqual(hs(1, 9));
      expect(warn).toHaveBeenCalledTimes(1);
      const msg = String(warn.mock.calls[0]![0]);
      expect(msg).toContain(at.file);
      expect(msg).toContain(`offset ${at.frame}`);
      // small enough that the partial record's bytes would still follow it if they were left
      const small = entry(11, 2, 20);
      await r.wal.save(hs(2, 10), [small]);
      want.push(small);
      await r.wal.close();

      warn.mockClear();
      const r2 = await Wal.open(dir, { index: 0, term: 0 }, { segmentSize: SEG });
      expectEntries(r2.entries, want);
      expect(warn).not.toHaveBeenCalled();
      await r2.wal.close();
    } finally {
      warn.mockRestore();
    }
  });

  test("torn tail with zero-filled sectors: valid prefix, one warning, later appends survive", async () => {
    const dir = walDir();
    const wal = await Wal.create(dir, META);
    const want = await fill(wal, 1, 5);
    await wal.save(null, [entry(6, 1, 3000)]);
    await wal.close();
    const at = locate(dir, 6);
    const bytes = readFileSync(at.file);
    // the sectors after the record's first one never reached the disk
    const from = (Math.floor(at.dataAt / 512) + 1) * 512;
    bytes.fill(0, from, at.dataAt + 3000);
    writeFileSync(at.file, bytes);

    const warn = spyOn(walLog, "warn");
    try {
      const r = await Wal.open(dir, { index: 0, term: 0 });
      expectEntries(r.entries, want);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(String(warn.mock.calls[0]![0])).toContain(`${at.file} at offset ${at.frame}`);
      // the torn bytes (the record's first sector is still there) must be gone before appending
      const small = entry(6, 1, 20);
      await r.wal.save(null, [small]);
      want.push(small);
      await r.wal.close();
      warn.mockClear();
      const r2 = await Wal.open(dir, { index: 0, term: 0 });
      expectEntries(r2.entries, want);
      expect(warn).not.toHaveBeenCalled();
      await r2.wal.close();
    } finally {
      warn.mockRestore();
    }
  });

  test("stale bytes past the end of the log are zeroed before appending", async () => {
    const dir = walDir();
    const wal = await Wal.create(dir, META);
    const want = await fill(wal, 1, 3);
    await wal.close();
    const at = locate(dir, 3);
    const end = (at.dataAt + 150 + 7) & ~7;
    const bytes = readFileSync(at.file);
    // junk behind a zero length word: harmless now, but appends would run into it
    for (let i = end + 64; i < end + 4096; i++) bytes[i] = (i * 7 + 1) & 0xff;
    writeFileSync(at.file, bytes);
    const r = await Wal.open(dir, { index: 0, term: 0 });
    expectEntries(r.entries, want);
    want.push(...(await fill(r.wal, 4, 10)));
    await r.wal.close();
    const r2 = await Wal.open(dir, { index: 0, term: 0 });
    expectEntries(r2.entries, want);
    await r2.wal.close();
  });

  for (const where of ["middle segment", "last segment"] as const) {
    test(`a flipped byte in a record in the ${where} is corruption: named, and nothing is changed`, async () => {
      const dir = walDir();
      const wal = await Wal.create(dir, META, { segmentSize: SEG });
      await fill(wal, 1, 60);
      await wal.close();
      const files = walFiles(dir);
      expect(files.length).toBeGreaterThanOrEqual(3);
      const target = where === "middle segment" ? files[1]! : files.at(-1)!;
      const first = parseInt(target.split("-")[1]!, 16);
      const at = locate(dir, first + 2);
      expect(at.file).toBe(join(dir, target));
      const bytes = readFileSync(at.file);
      bytes[at.dataAt + 40]! ^= 0x04;
      writeFileSync(at.file, bytes);
      const before = snapshotFiles(dir);

      const err = await Wal.open(dir, { index: 0, term: 0 }, { segmentSize: SEG }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(WalCorruptError);
      const c = err as WalCorruptError;
      expect(c.file).toBe(at.file);
      expect(c.offset).toBe(at.frame);
      expect(c.message).toBe(`wal: crc mismatch in ${at.file} at offset ${at.frame}`);
      expect(snapshotFiles(dir)).toEqual(before);
    });
  }

  test("a flipped bit in a length word is corruption, not a torn tail", async () => {
    const dir = walDir();
    const wal = await Wal.create(dir, META);
    await fill(wal, 1, 10);
    await wal.close();
    const at = locate(dir, 5);
    const bytes = readFileSync(at.file);
    bytes[at.frame + 1]! ^= 0x10; // length grows by 4096: would read into the zeroed tail
    writeFileSync(at.file, bytes);
    expect(Wal.open(dir, { index: 0, term: 0 })).rejects.toThrow(`wal: bad length word in ${at.file} at offset ${at.frame}`);
  });

  test("a missing segment is corruption", async () => {
    const dir = walDir();
    const wal = await Wal.create(dir, META, { segmentSize: SEG });
    await fill(wal, 1, 60);
    await wal.close();
    const files = walFiles(dir);
    rmSync(join(dir, files[1]!));
    expect(Wal.open(dir, { index: 0, term: 0 }, { segmentSize: SEG })).rejects.toBeInstanceOf(WalCorruptError);
  });

  test("an overwritten index replaces it and drops the tail after it, across reopen and segments", async () => {
    const dir = walDir();
    const wal = await Wal.create(dir, META, { segmentSize: SEG });
    const old = await fill(wal, 1, 30);
    // a new leader's log wins from index 25 on, then grows past the old tail
    const fresh = Array.from({ length: 10 }, (_, i) => entry(25 + i, 2));
    await wal.save(hs(2, 24), fresh.slice(0, 2));
    await wal.save(hs(2, 24), fresh.slice(2));
    await wal.close();
    const r = await Wal.open(dir, { index: 0, term: 0 }, { segmentSize: SEG });
    expectEntries(r.entries, [...old.slice(0, 24), ...fresh]);
    // and again, onto a shorter log
    await r.wal.save(hs(3, 24), [entry(26, 3)]);
    await r.wal.close();
    const r2 = await Wal.open(dir, { index: 0, term: 0 }, { segmentSize: SEG });
    expectEntries(r2.entries, [...old.slice(0, 24), fresh[0]!, entry(26, 3)]);
    await r2.wal.close();
  });

  test("open(after) returns only later entries, and checks the snapshot marker's term", async () => {
    const dir = walDir();
    const wal = await Wal.create(dir, META, { segmentSize: SEG });
    const want = await fill(wal, 1, 50);
    await wal.saveSnapshot({ index: 40, term: 1 });
    await wal.close();
    for (const after of [0, 1, 17, 40, 50]) {
      const r = await Wal.open(dir, { index: after, term: after === 0 ? 0 : 1 }, { segmentSize: SEG });
      expectEntries(r.entries, want.slice(after));
      expect(r.hardState).toEqual(hs(1, 49));
      await r.wal.close();
    }
    expect(Wal.open(dir, { index: 40, term: 7 }, { segmentSize: SEG })).rejects.toThrow(/snapshot mismatch/);
  });

  test("entries missing between the snapshot loaded and the log are an error", async () => {
    const dir = walDir();
    const wal = await Wal.create(dir, META);
    await fill(wal, 1, 3);
    // a follower that was sent a snapshot at 10 goes on from 11
    await wal.saveSnapshot({ index: 10, term: 1 });
    const later = [entry(11), entry(12)];
    await wal.save(hs(1, 10), later);
    await wal.close();
    const r = await Wal.open(dir, { index: 10, term: 1 });
    expectEntries(r.entries, later);
    await r.wal.close();
    expect(Wal.open(dir, { index: 0, term: 0 })).rejects.toThrow(/entry 11 follows 3/);
  });

  test("releaseTo drops whole segments before the one holding the index", async () => {
    const dir = walDir();
    const wal = await Wal.create(dir, META, { segmentSize: SEG });
    const want = await fill(wal, 1, 100);
    const files = walFiles(dir);
    expect(files.length).toBeGreaterThanOrEqual(5);
    const firsts = files.map((n) => parseInt(n.split("-")[1]!, 16));
    const snap = firsts[3]! + 1; // inside the 4th segment
    await wal.saveSnapshot({ index: snap, term: 1 });
    await wal.releaseTo(snap);
    expect(walFiles(dir)).toEqual(files.slice(3));
    expect(wal.segmentNames()[0]).toBe(files[3]!);
    await wal.releaseTo(snap); // nothing more to drop
    expect(walFiles(dir)[0]).toBe(files[3]!);
    want.push(...(await fill(wal, 101, 110)));
    await wal.close();

    const r = await Wal.open(dir, { index: snap, term: 1 }, { segmentSize: SEG });
    expectEntries(r.entries, want.slice(snap));
    expect(dec.decode(r.metadata)).toBe(dec.decode(META));
    await r.wal.close();
    expect(Wal.open(dir, { index: 0, term: 0 }, { segmentSize: SEG })).rejects.toThrow(/no segment/);
  });

  test("the tail segment is never released", async () => {
    const dir = walDir();
    const wal = await Wal.create(dir, META, { segmentSize: SEG });
    await fill(wal, 1, 40);
    await wal.releaseTo(1_000_000);
    expect(walFiles(dir)).toEqual([wal.segmentNames().at(-1)!]);
    await fill(wal, 41, 45);
    await wal.close();
    const first = parseInt(walFiles(dir)[0]!.split("-")[1]!, 16);
    const r = await Wal.open(dir, { index: first, term: 1 }, { segmentSize: SEG });
    expect(r.entries.map((e) => e.index)).toEqual(Array.from({ length: 45 - first }, (_, i) => first + 1 + i));
    await r.wal.close();
  });

  test("saves after close are refused", async () => {
    const dir = walDir();
    const wal = await Wal.create(dir, META);
    const pending = wal.save(hs(1, 0), [entry(1)]);
    await wal.close();
    await pending;
    expect(wal.save(hs(1, 1), [entry(2)])).rejects.toThrow(/closed/);
    const r = await Wal.open(dir, { index: 0, term: 0 });
    expect(r.entries.map((e) => e.index)).toEqual([1]);
    await r.wal.close();
  });
});

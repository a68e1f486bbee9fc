// Wal.open reads segments through a small window (memory follows the data, not the 64 MB file):
// the same guarantees must hold when records straddle window boundaries or outgrow the window.
import { describe, expect, spyOn, test } from "bun:test";
import { readFileSync, readdirSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Entry, HardState } from "../../internal/kv/types.ts";
import { Wal, WalCorruptError, log as walLog, type WalOptions } from "../../internal/wal/wal.ts";
import { entry as walEntry, locate, walDirs, walFiles } from "../helpers/wal.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const META = enc.encode('{"memberId":"8e9e05c52164694d","clusterId":"cdf818194e3a8c32"}');
/** Smaller than a frame header plus most records: nearly every record crosses a window edge. */
const CHUNK = 24;
/** Segments preallocated to 1 MiB: reading a zero tail 24 bytes at a time must stay quick. */
const SEG = 1 << 20;

const walDir = walDirs("coreos-walread-");
const entry = (index: number, term = 1, size = 150) => walEntry(index, term, size, "y");

const hs = (term: number, commit: number): HardState => ({ term, vote: "8e9e05c52164694d", commit });

function expectEntries(got: Entry[], want: Entry[]): void {
  expect(got.map((e) => [e.index, e.term, dec.decode(e.data)])).toEqual(want.map((e) => [e.index, e.term, dec.decode(e.data)]));
}

/** Entries of varied sizes, some far larger than the window, one save each. */
async function fill(wal: Wal, from: number, to: number, term = 1): Promise<Entry[]> {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) {
    const e = entry(i, term, i % 7 === 0 ? 5000 : 20 + ((i * 37) % 300));
    out.push(e);
    await wal.save(hs(term, i - 1), [e]);
  }
  return out;
}

describe("Wal.open with a small read window", () => {
  for (const segmentSize of [8192, 1 << 20]) {
    test(`round trip across segments of ${segmentSize} bytes, then appends after reopen`, async () => {
      const o: WalOptions = { segmentSize, readChunk: CHUNK };
      const dir = walDir();
      const wal = await Wal.create(dir, META, o);
      const want = await fill(wal, 1, 60);
      await wal.close();
      const r = await Wal.open(dir, { index: 0, term: 0 }, o);
      expect(dec.decode(r.metadata)).toBe(dec.decode(META));
      expect(r.hardState).toEqual(hs(1, 59));
      expectEntries(r.entries, want);
      want.push(...(await fill(r.wal, 61, 70, 2)));
      await r.wal.close();
      const r2 = await Wal.open(dir, { index: 0, term: 0 }, o);
      expectEntries(r2.entries, want);
      await r2.wal.close();
      // and with the default window, which holds a whole small segment
      const r3 = await Wal.open(dir, { index: 0, term: 0 }, { segmentSize });
      expectEntries(r3.entries, want);
      await r3.wal.close();
    });
  }

  test("a record larger than the window after a torn cut is still a torn tail", async () => {
    const o: WalOptions = { segmentSize: SEG, readChunk: CHUNK };
    const dir = walDir();
    const wal = await Wal.create(dir, META, o);
    const want = await fill(wal, 1, 5);
    await wal.save(hs(1, 5), [entry(6, 1, 4000)]);
    await wal.close();
    const at = locate(dir, 6);
    truncateSync(at.file, at.dataAt + 1000);
    const warn = spyOn(walLog, "warn");
    try {
      const r = await Wal.open(dir, { index: 0, term: 0 }, o);
      expectEntries(r.entries, want);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(String(warn.mock.calls[0]![0])).toContain(`${at.file} at offset ${at.frame}`);
      // the file is whole again: preallocated to the segment size
      expect(statSync(at.file).size).toBe(SEG);
      await r.wal.close();
    } finally {
      warn.mockRestore();
    }
  });

  test("zero-filled sectors in a record that spans many windows: torn, cut, zeroed, appends survive", async () => {
    const o: WalOptions = { segmentSize: SEG, readChunk: CHUNK };
    const dir = walDir();
    const wal = await Wal.create(dir, META, o);
    const want = await fill(wal, 1, 5);
    await wal.save(null, [entry(6, 1, 3000)]);
    await wal.close();
    const at = locate(dir, 6);
    const bytes = readFileSync(at.file);
    const from = (Math.floor(at.dataAt / 512) + 1) * 512;
    bytes.fill(0, from, from + 1024);
    writeFileSync(at.file, bytes);
    const warn = spyOn(walLog, "warn");
    try {
      const r = await Wal.open(dir, { index: 0, term: 0 }, o);
      expectEntries(r.entries, want);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(String(warn.mock.calls[0]![0])).toContain(`${at.file} at offset ${at.frame}`);
      // everything from the cut to the record's last written byte is discarded
      expect(String(warn.mock.calls[0]![0])).toMatch(/discarding \d+ bytes/);
      const after = readFileSync(at.file);
      expect(after.subarray(at.frame, at.dataAt + 3000).every((b) => b === 0)).toBe(true);
      const small = entry(6, 1, 20);
      await r.wal.save(null, [small]);
      want.push(small);
      await r.wal.close();
      warn.mockClear();
      const r2 = await Wal.open(dir, { index: 0, term: 0 }, o);
      expectEntries(r2.entries, want);
      expect(warn).not.toHaveBeenCalled();
      await r2.wal.close();
    } finally {
      warn.mockRestore();
    }
  });

  test("stale bytes far past the end of the log (many windows on) are zeroed, up to the last one", async () => {
    const o: WalOptions = { segmentSize: SEG, readChunk: CHUNK };
    const dir = walDir();
    const wal = await Wal.create(dir, META, o);
    const want = await fill(wal, 1, 3);
    await wal.close();
    const file = join(dir, walFiles(dir)[0]!);
    const bytes = readFileSync(file);
    // a lone junk byte deep in the preallocated space, and one at the very end of the file
    bytes[SEG >> 1] = 0x5a;
    bytes[bytes.length - 1] = 0xa5;
    writeFileSync(file, bytes);
    const r = await Wal.open(dir, { index: 0, term: 0 }, { segmentSize: SEG, readChunk: 4096 });
    expectEntries(r.entries, want);
    const after = readFileSync(file);
    expect(after[SEG >> 1]).toBe(0);
    expect(after[after.length - 1]).toBe(0);
    want.push(...(await fill(r.wal, 4, 10)));
    await r.wal.close();
    const r2 = await Wal.open(dir, { index: 0, term: 0 }, o);
    expectEntries(r2.entries, want);
    await r2.wal.close();
  });

  test("a flipped byte in a record that spans windows is corruption at the record's offset", async () => {
    const o: WalOptions = { segmentSize: 8192, readChunk: CHUNK };
    const dir = walDir();
    const wal = await Wal.create(dir, META, o);
    await fill(wal, 1, 40);
    await wal.close();
    const at = locate(dir, 14); // a 5000-byte entry
    const bytes = readFileSync(at.file);
    bytes[at.dataAt + 2500]! ^= 0x01;
    writeFileSync(at.file, bytes);
    const err = await Wal.open(dir, { index: 0, term: 0 }, o).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WalCorruptError);
    expect((err as WalCorruptError).file).toBe(at.file);
    expect((err as WalCorruptError).offset).toBe(at.frame);
  });

  test("a flipped byte in a record's padding is corruption too (the crc does not cover it)", async () => {
    const o: WalOptions = { segmentSize: SEG, readChunk: CHUNK };
    const dir = walDir();
    const wal = await Wal.create(dir, META, o);
    for (let i = 1; i <= 6; i++) await wal.save(hs(1, i - 1), [entry(i, 1, 150)]);
    await wal.close();
    const at = locate(dir, 3);
    // frame: 8 length bytes, crc, type, then term, index and entry type (one byte each), 150 data
    const end = at.frame + 8 + 5 + 3 + 150;
    expect(end % 8).not.toBe(0);
    const bytes = readFileSync(at.file);
    expect(bytes[end]).toBe(0);
    bytes[end] = 0x20;
    writeFileSync(at.file, bytes);
    const err = await Wal.open(dir, { index: 0, term: 0 }, o).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WalCorruptError);
    expect((err as WalCorruptError).message).toBe(`wal: nonzero padding after the record in ${at.file} at offset ${at.frame}`);
  });
});

// Decoding one segment: validates framing and the rolling crc, and tells a crash-torn tail
// (recoverable) from corruption (fatal).
import { corrupt } from "./errors.ts";
import { BODY_HEAD, DecodeError, LEN_BYTES, MAX_BODY, RecordType, crc32, hasZeroSector } from "./record.ts";

export interface ScanResult {
  /** Offset just past the last valid record. */
  end: number;
  /** Running crc after the last valid record. */
  crc: number;
  /** The records after `end` are a torn write (only ever true for the last segment). */
  torn: boolean;
}

export type Visit = (type: RecordType, data: Uint8Array, offset: number) => void;

/**
 * Walks the records of a segment held in `buf`. `seed` is the running crc carried over from the
 * previous segment, or null for the first segment read (its crc record then seeds the chain).
 * A bad record at the end of the last segment that looks like a crash (short, or with an all-zero
 * sector) ends the scan; anything else bad throws WalCorruptError. `visit` may throw DecodeError.
 */
export function scanSegment(buf: Uint8Array, file: string, seed: number | null, isLast: boolean, visit: Visit): ScanResult {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let crc = seed ?? 0;
  let off = 0;
  const torn = (): ScanResult => {
    // a segment's header is synced before the segment is renamed into place: it cannot be torn
    if (off === 0) throw corrupt("damaged segment header", file, off);
    return { end: off, crc, torn: true };
  };
  for (;;) {
    if (off + LEN_BYTES > buf.length) {
      if (off === buf.length && off > 0) break;
      if (isLast) return torn();
      throw corrupt("truncated length word", file, off);
    }
    const len = view.getUint32(off, true);
    const check = view.getUint32(off + 4, true);
    if (len === 0 && check === 0) {
      // preallocated space: the end of this segment's records
      if (off === 0) throw corrupt("segment without header", file, off);
      break;
    }
    // an aligned 8-byte word cannot be torn, so a bad one is damage, not a crash
    if (check !== ~len >>> 0 || len < BODY_HEAD || len > MAX_BODY) throw corrupt("bad length word", file, off);
    const end = off + LEN_BYTES + len;
    if (end > buf.length) {
      if (isLast) return torn();
      throw corrupt("unexpected end of file", file, off);
    }
    const type = buf[off + 12]!;
    const stored = view.getUint32(off + 8, true);
    let next: number;
    let ok: boolean;
    if (type === RecordType.crc) {
      next = stored;
      ok = len === BODY_HEAD && (seed === null && off === 0 ? true : stored === crc);
    } else {
      next = crc32(buf.subarray(off + 12, end), crc);
      ok = next === stored;
    }
    if (!ok) {
      if (isLast && hasZeroSector(buf, off + LEN_BYTES, end)) return torn();
      throw corrupt("crc mismatch", file, off);
    }
    // with a good crc the bytes are what we wrote; anything odd now is a bug or a foreign file
    if (off === 0 && type !== RecordType.crc) throw corrupt("segment does not start with a crc record", file, off);
    if (type < RecordType.metadata || type > RecordType.snapshot) throw corrupt(`unknown record type ${type}`, file, off);
    try {
      visit(type as RecordType, buf.subarray(off + 13, end), off);
    } catch (err) {
      if (err instanceof DecodeError) throw corrupt(`undecodable record (${err.message})`, file, off);
      throw err;
    }
    crc = next;
    off = (end + 7) & ~7;
  }
  return { end: off, crc, torn: false };
}

/** One past the last non-zero byte at or after `from` (or `from` if there is none). */
export function nonZeroEnd(buf: Uint8Array, from: number): number {
  let i = buf.length;
  if (buf.byteOffset % 4 === 0) {
    // whole words first: a 64 MB preallocated tail is scanned on every open
    while (i > from && i % 4 !== 0) {
      if (buf[i - 1] !== 0) return i;
      i--;
    }
    if (i % 4 === 0) {
      const words = new Uint32Array(buf.buffer, buf.byteOffset, i / 4);
      const stop = Math.ceil(from / 4);
      let w = i / 4;
      while (w > stop && words[w - 1] === 0) w--;
      i = w * 4;
    }
  }
  while (i > from && buf[i - 1] === 0) i--;
  return i;
}

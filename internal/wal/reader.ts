// Decoding one segment: validates framing and the rolling crc, and tells a crash-torn tail
// (recoverable) from corruption (fatal). Segments are read through a small window, never whole:
// a segment is 64 MB preallocated, and start-up memory should follow the data, not the file size.
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { corrupt } from "./errors.ts";
import { BODY_HEAD, DecodeError, LEN_BYTES, MAX_BODY, RecordType, crc32, hasZeroSector } from "./record.ts";

export interface ScanResult {
  /** Offset just past the last valid record. */
  end: number;
  /** Running crc after the last valid record. */
  crc: number;
  /** The records after `end` are a torn write (only ever true for the last segment). */
  torn: boolean;
  /** The file's size. */
  size: number;
  /** With `findJunk`: one past the last non-zero byte at or after `end` (`end` if there is none). */
  junkEnd: number;
}

/**
 * `data` is a view into a reused read buffer: valid only during the call, copy what you keep.
 * `offset` is the record's offset in the file.
 */
export type Visit = (type: RecordType, data: Uint8Array, offset: number) => void;

/** Bytes read per read(2); a record larger than this gets a window of its own size. */
export const READ_CHUNK = 1 << 20;

/** A sliding window over a file: holds at most max(READ_CHUNK, largest record) bytes. */
class Window {
  buf: Uint8Array;
  /** File offset of buf[0]. */
  start = 0;
  /** Valid bytes in buf. */
  len = 0;

  constructor(
    private readonly fd: number,
    public size: number,
    chunk: number,
  ) {
    this.buf = new Uint8Array(Math.min(chunk, Math.max(size, LEN_BYTES)));
  }

  /**
   * Makes file bytes [off, off + n) available (n must not run past the file) and returns the
   * index of `off` in `buf`.
   */
  at(off: number, n: number): number {
    if (off >= this.start && off + n <= this.start + this.len) return off - this.start;
    const keep = off >= this.start && off < this.start + this.len ? this.start + this.len - off : 0;
    if (n > this.buf.length) {
      const bigger = new Uint8Array(n);
      if (keep > 0) bigger.set(this.buf.subarray(off - this.start, off - this.start + keep));
      this.buf = bigger;
    } else if (keep > 0) {
      this.buf.copyWithin(0, off - this.start, off - this.start + keep);
    }
    this.start = off;
    this.len = keep;
    while (this.len < this.buf.length && this.start + this.len < this.size) {
      const want = Math.min(this.buf.length - this.len, this.size - this.start - this.len);
      const got = readSync(this.fd, this.buf, this.len, want, this.start + this.len);
      if (got === 0) {
        // shorter than fstat said: the file shrank under us; what is there is all there is
        this.size = this.start + this.len;
        break;
      }
      this.len += got;
    }
    if (this.len < n) throw new Error(`wal: short read at offset ${off}`);
    return 0;
  }
}

/**
 * Walks the records of the segment file `file`. `seed` is the running crc carried over from the
 * previous segment, or null for the first segment read (its crc record then seeds the chain).
 * A bad record at the end of the last segment that looks like a crash (short, or with an all-zero
 * sector) ends the scan; anything else bad throws WalCorruptError. `visit` may throw DecodeError.
 * With `findJunk`, the rest of the file after the last record is read too, for stale bytes.
 */
export function scanSegmentFile(
  file: string,
  seed: number | null,
  isLast: boolean,
  visit: Visit,
  findJunk = false,
  chunk = READ_CHUNK,
): ScanResult {
  const fd = openSync(file, "r");
  try {
    const w = new Window(fd, fstatSync(fd).size, chunk);
    const res = scan(w, file, seed, isLast, visit);
    return { ...res, size: w.size, junkEnd: findJunk ? nonZeroEndOf(w, res.end) : res.end };
  } finally {
    closeSync(fd);
  }
}

function scan(w: Window, file: string, seed: number | null, isLast: boolean, visit: Visit): { end: number; crc: number; torn: boolean } {
  let crc = seed ?? 0;
  let off = 0;
  const torn = () => {
    // a segment's header is synced before the segment is renamed into place: it cannot be torn
    if (off === 0) throw corrupt("damaged segment header", file, off);
    return { end: off, crc, torn: true };
  };
  for (;;) {
    if (off + LEN_BYTES > w.size) {
      if (off === w.size && off > 0) break;
      if (isLast) return torn();
      throw corrupt("truncated length word", file, off);
    }
    let i = w.at(off, LEN_BYTES);
    let buf = w.buf;
    const len = (buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24)) >>> 0;
    const check = (buf[i + 4]! | (buf[i + 5]! << 8) | (buf[i + 6]! << 16) | (buf[i + 7]! << 24)) >>> 0;
    if (len === 0 && check === 0) {
      // preallocated space: the end of this segment's records
      if (off === 0) throw corrupt("segment without header", file, off);
      break;
    }
    // an aligned 8-byte word cannot be torn, so a bad one is damage, not a crash
    if (check !== ~len >>> 0 || len < BODY_HEAD || len > MAX_BODY) throw corrupt("bad length word", file, off);
    const end = off + LEN_BYTES + len;
    if (end > w.size) {
      if (isLast) return torn();
      throw corrupt("unexpected end of file", file, off);
    }
    i = w.at(off, LEN_BYTES + len);
    buf = w.buf;
    const type = buf[i + 12]!;
    const stored = (buf[i + 8]! | (buf[i + 9]! << 8) | (buf[i + 10]! << 16) | (buf[i + 11]! << 24)) >>> 0;
    let next: number;
    let ok: boolean;
    if (type === RecordType.crc) {
      next = stored;
      ok = len === BODY_HEAD && (seed === null && off === 0 ? true : stored === crc);
    } else {
      next = crc32(buf.subarray(i + 12, i + LEN_BYTES + len), crc);
      ok = next === stored;
    }
    if (!ok) {
      if (isLast && hasZeroSector(buf.subarray(i + LEN_BYTES, i + LEN_BYTES + len), off + LEN_BYTES)) return torn();
      throw corrupt("crc mismatch", file, off);
    }
    // with a good crc the bytes are what we wrote; anything odd now is a bug or a foreign file
    if (off === 0 && type !== RecordType.crc) throw corrupt("segment does not start with a crc record", file, off);
    if (type < RecordType.metadata || type > RecordType.snapshot) throw corrupt(`unknown record type ${type}`, file, off);
    try {
      visit(type as RecordType, buf.subarray(i + 13, i + LEN_BYTES + len), off);
    } catch (err) {
      if (err instanceof DecodeError) throw corrupt(`undecodable record (${err.message})`, file, off);
      throw err;
    }
    // padding goes out as zeros in the same write as its record: anything else is damage that
    // the crc does not cover (and a crash cannot explain)
    const padEnd = Math.min((end + 7) & ~7, w.size);
    if (padEnd > end) {
      const j = w.at(end, padEnd - end);
      for (let k = 0; k < padEnd - end; k++) if (w.buf[j + k] !== 0) throw corrupt("nonzero padding after the record", file, off);
    }
    crc = next;
    off = (end + 7) & ~7;
  }
  return { end: off, crc, torn: false };
}

const ZEROS = Buffer.alloc(64 << 10);

/** One past the last non-zero byte of the file at or after `from` (or `from` if there is none). */
function nonZeroEndOf(w: Window, from: number): number {
  let last = from;
  for (let off = from; off < w.size; ) {
    const n = Math.min(w.buf.length, w.size - off);
    const i = w.at(off, n);
    // memcmp against zeros first: the tail of a preallocated segment is tens of MB of them
    for (let p = 0; p < n; p += ZEROS.length) {
      const m = Math.min(ZEROS.length, n - p);
      const piece = Buffer.from(w.buf.buffer, w.buf.byteOffset + i + p, m);
      if (piece.equals(m === ZEROS.length ? ZEROS : ZEROS.subarray(0, m))) continue;
      last = off + p + nonZeroEnd(piece, 0);
    }
    off += n;
  }
  return last;
}

/** One past the last non-zero byte of buf at or after `from` (or `from` if there is none). */
export function nonZeroEnd(buf: Uint8Array, from: number): number {
  let i = buf.length;
  if (buf.byteOffset % 4 === 0) {
    // whole words first: most of a preallocated tail is zeros
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

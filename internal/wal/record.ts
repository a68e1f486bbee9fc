// WAL record framing and payload codecs.
//
// Frame: [u32 len][u32 ~len][u32 crc][u8 type][data ...][zero pad to 8]
//   len  = 5 + data.length (the body: crc, type, data; padding excluded)
//   ~len guards the length word: a flipped bit there is corruption, not a wild jump.
// Frames start on 8-byte boundaries, so the length word never straddles a sector and cannot be torn.
// crc is rolling: crc32 over (type, data) seeded with the crc of the record before it, so a record
// only validates in its place in the log. A crc record carries the running value instead, which is
// how each segment picks up the chain of the one before.
import type { Entry, HardState } from "../kv/types.ts";

export const RecordType = { metadata: 1, entry: 2, hardState: 3, crc: 4, snapshot: 5 } as const;
export type RecordType = (typeof RecordType)[keyof typeof RecordType];

export const LEN_BYTES = 8;
export const BODY_HEAD = 5;
/** Larger bodies are refused on write and treated as a garbled length word on read. */
export const MAX_BODY = 32 << 20;
/** Torn-write granularity: a crash can drop whole sectors of an unsynced write. */
export const SECTOR = 512;

export interface WalSnapshot {
  index: number;
  term: number;
}

/** A record waiting to be framed: data = head ++ tail (tail kept by reference to avoid a copy). */
export interface PendingRecord {
  type: RecordType;
  head: Uint8Array;
  tail?: Uint8Array;
}

export function crc32(data: Uint8Array, seed: number): number {
  return Bun.hash.crc32(data, seed);
}

export function frameSize(dataLen: number): number {
  return (LEN_BYTES + BODY_HEAD + dataLen + 7) & ~7;
}

export function recordLen(r: PendingRecord): number {
  return r.head.length + (r.tail?.length ?? 0);
}

/**
 * Frames `r` into `buf` at `off` (buf must be zero-filled there, padding is not written).
 * Returns the new running crc; crc records leave it unchanged.
 */
export function frameInto(buf: Uint8Array, view: DataView, off: number, r: PendingRecord, crc: number): number {
  const dataLen = recordLen(r);
  const len = BODY_HEAD + dataLen;
  view.setUint32(off, len, true);
  view.setUint32(off + 4, ~len >>> 0, true);
  buf[off + 12] = r.type;
  buf.set(r.head, off + 13);
  if (r.tail) buf.set(r.tail, off + 13 + r.head.length);
  const next = r.type === RecordType.crc ? crc : crc32(buf.subarray(off + 12, off + 13 + dataLen), crc);
  view.setUint32(off + 8, next, true);
  return next;
}

// ---- payload codecs: unsigned varints keep numbers small and avoid runs of zero bytes,
// which the torn-write check would otherwise be more likely to mistake for an unwritten sector.

function uvarintLen(v: number): number {
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

function putUvarint(buf: Uint8Array, off: number, v: number): number {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`wal: cannot encode ${v}`);
  while (v >= 0x80) {
    buf[off++] = (v % 128) | 0x80;
    v = Math.floor(v / 128);
  }
  buf[off++] = v;
  return off;
}

export class DecodeError extends Error {}

class Reader {
  off = 0;
  constructor(readonly buf: Uint8Array) {}
  uvarint(): number {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 8; i++) {
      const b = this.buf[this.off++];
      if (b === undefined) throw new DecodeError("truncated varint");
      v += (b & 0x7f) * mul;
      if (b < 0x80) {
        if (!Number.isSafeInteger(v)) throw new DecodeError("varint overflow");
        return v;
      }
      mul *= 128;
    }
    throw new DecodeError("varint too long");
  }
  u8(): number {
    const b = this.buf[this.off++];
    if (b === undefined) throw new DecodeError("truncated");
    return b;
  }
  end(): void {
    if (this.off !== this.buf.length) throw new DecodeError("trailing bytes");
  }
}

function numbers(...vs: number[]): Uint8Array {
  const out = new Uint8Array(vs.reduce((n, v) => n + uvarintLen(v), 0));
  let off = 0;
  for (const v of vs) off = putUvarint(out, off, v);
  return out;
}

export function entryRecord(e: Entry): PendingRecord {
  const head = new Uint8Array(uvarintLen(e.term) + uvarintLen(e.index) + 1);
  let off = putUvarint(head, 0, e.term);
  off = putUvarint(head, off, e.index);
  head[off] = e.type;
  return { type: RecordType.entry, head, tail: e.data };
}

export function decodeEntry(data: Uint8Array): Entry {
  const r = new Reader(data);
  const term = r.uvarint();
  const index = r.uvarint();
  const type = r.u8();
  if (type !== 0 && type !== 1) throw new DecodeError(`bad entry type ${type}`);
  // slice: the caller's buffer is a whole segment; keep only the entry's bytes alive
  return { term, index, type, data: data.slice(r.off) };
}

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/** term and commit as varints, then the vote: a member ID, 64 bits in hex, too wide for a number. */
export function hardStateRecord(h: HardState): PendingRecord {
  return { type: RecordType.hardState, head: numbers(h.term, h.commit), tail: utf8.encode(h.vote) };
}

export function decodeHardState(data: Uint8Array): HardState {
  const r = new Reader(data);
  const term = r.uvarint();
  const commit = r.uvarint();
  return { term, vote: fromUtf8.decode(data.subarray(r.off)), commit };
}

export function snapshotRecord(s: WalSnapshot): PendingRecord {
  return { type: RecordType.snapshot, head: numbers(s.index, s.term) };
}

export function decodeSnapshot(data: Uint8Array): WalSnapshot {
  const r = new Reader(data);
  const s = { index: r.uvarint(), term: r.uvarint() };
  r.end();
  return s;
}

export function metadataRecord(m: Uint8Array): PendingRecord {
  return { type: RecordType.metadata, head: m };
}

export function crcRecord(): PendingRecord {
  return { type: RecordType.crc, head: new Uint8Array(0) };
}

/** Frames records into one buffer ready for a single write. */
export function frameAll(records: readonly PendingRecord[], crc: number): { buf: Uint8Array; crc: number } {
  let size = 0;
  for (const r of records) size += frameSize(recordLen(r));
  const buf = new Uint8Array(size);
  const view = new DataView(buf.buffer);
  let off = 0;
  for (const r of records) {
    crc = frameInto(buf, view, off, r, crc);
    off += frameSize(recordLen(r));
  }
  return { buf, crc };
}

/**
 * etcd's torn-write test: split the body at sector boundaries (file offsets) and look for a piece
 * that is entirely zero. A crash mid-write leaves unwritten sectors as zeros; real corruption
 * rarely zeroes a whole sector's worth of a record. `body` starts at file offset `at`.
 */
export function hasZeroSector(body: Uint8Array, at: number): boolean {
  let s = 0;
  while (s < body.length) {
    const e = Math.min(body.length, (Math.floor((at + s) / SECTOR) + 1) * SECTOR - at);
    let zero = true;
    for (let i = s; i < e; i++) {
      if (body[i] !== 0) {
        zero = false;
        break;
      }
    }
    if (zero) return true;
    s = e;
  }
  return false;
}

// GPT on the wire: protective MBR, header, entry array, their CRC32s, and the checks a copy must
// pass to be trusted. Pure: bytes in, values out (and back); the file I/O lives in disk.ts.
import { decodeAttrs, type BootAttrs } from "./attrs.ts";
import { GptError } from "./errors.ts";
import { decodeGuid, encodeGuid, ZERO_GUID } from "./guid.ts";

export const SIGNATURE = "EFI PART";
export const REVISION = 0x00010000;
export const HEADER_SIZE = 92;
export const ENTRY_SIZE = 128;
export const DEFAULT_ENTRY_COUNT = 128;
const NAME_OFFSET = 56;
const NAME_CHARS = 36;
/** No sane table has more slots; bounds what a damaged header can make us read. */
const MAX_ENTRY_COUNT = 1024;

export interface Entry {
  readonly type: string;
  readonly uuid: string;
  readonly firstLba: number;
  readonly lastLba: number;
  /** The whole 64-bit attribute field; the boot bits are also decoded on a Partition. */
  readonly attributes: bigint;
  readonly label: string;
}

/** A used entry slot: `number` is the slot index + 1, as cgpt -i and /dev/sdaN count. */
export interface Partition extends Entry, BootAttrs {
  readonly number: number;
}

export interface Table {
  readonly sectorSize: number;
  /** Size of the whole device in sectors; the backup header is the last one. */
  readonly sectors: number;
  readonly diskGuid: string;
  readonly firstUsable: number;
  readonly lastUsable: number;
  readonly entryCount: number;
  /** Used slots only, ascending by number. */
  readonly partitions: readonly Partition[];
}

export interface Header {
  readonly currentLba: number;
  readonly backupLba: number;
  readonly firstUsable: number;
  readonly lastUsable: number;
  readonly diskGuid: string;
  readonly entriesLba: number;
  readonly entryCount: number;
  readonly entrySize: number;
  readonly entriesCrc: number;
}

export type Checked<T> = { ok: true; value: T } | { ok: false; reason: string };

export function crc32(b: Uint8Array): number {
  return Bun.hash.crc32(b) >>> 0;
}

export function entriesSectors(entryCount: number, sectorSize: number): number {
  return Math.ceil((entryCount * ENTRY_SIZE) / sectorSize);
}

export function partition(number: number, e: Entry): Partition {
  return { number, ...e, ...decodeAttrs(e.attributes) };
}

// ---- header ----

function u64(v: DataView, off: number): number {
  const n = v.getBigUint64(off, true);
  return n > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(n);
}

/** Decodes and checks one header sector read from `lba` of a device of `sectors` sectors. */
export function decodeHeader(sector: Uint8Array, lba: number, sectors: number): Checked<Header> {
  const v = new DataView(sector.buffer, sector.byteOffset, sector.byteLength);
  if (new TextDecoder().decode(sector.subarray(0, 8)) !== SIGNATURE) return bad("no GPT signature");
  const size = v.getUint32(12, true);
  if (size < HEADER_SIZE || size > sector.length) return bad(`header size ${size} out of range`);
  const copy = sector.slice(0, size);
  new DataView(copy.buffer).setUint32(16, 0, true);
  if (crc32(copy) !== v.getUint32(16, true)) return bad("header CRC mismatch");
  const h: Header = {
    currentLba: u64(v, 24),
    backupLba: u64(v, 32),
    firstUsable: u64(v, 40),
    lastUsable: u64(v, 48),
    diskGuid: decodeGuid(sector, 56),
    entriesLba: u64(v, 72),
    entryCount: v.getUint32(80, true),
    entrySize: v.getUint32(84, true),
    entriesCrc: v.getUint32(88, true),
  };
  if (h.currentLba !== lba) return bad(`header says it is at LBA ${h.currentLba}, read from ${lba}`);
  if (h.entrySize !== ENTRY_SIZE) return bad(`entry size ${h.entrySize} (only ${ENTRY_SIZE} is supported)`);
  if (h.entryCount < 1 || h.entryCount > MAX_ENTRY_COUNT) return bad(`entry count ${h.entryCount} out of range`);
  if (h.firstUsable > h.lastUsable + 1 || h.lastUsable >= sectors - 1) return bad("usable range out of the disk");
  const n = entriesSectors(h.entryCount, sector.length);
  const primary = lba === 1;
  const entriesOk = primary
    ? h.entriesLba >= 2 && h.entriesLba + n <= h.firstUsable
    : h.entriesLba > h.lastUsable && h.entriesLba + n <= lba;
  if (!entriesOk) return bad("entry array overlaps the usable range or the header");
  return { ok: true, value: h };
}

function bad(reason: string): { ok: false; reason: string } {
  return { ok: false, reason };
}

// ---- entries ----

function decodeEntry(b: Uint8Array, off: number): Entry | null {
  const type = decodeGuid(b, off);
  if (type === ZERO_GUID) return null;
  const v = new DataView(b.buffer, b.byteOffset + off, ENTRY_SIZE);
  let label = "";
  for (let i = 0; i < NAME_CHARS; i++) {
    const c = v.getUint16(NAME_OFFSET + i * 2, true);
    if (c === 0) break;
    label += String.fromCharCode(c);
  }
  return {
    type,
    uuid: decodeGuid(b, off + 16),
    firstLba: u64(v, 32),
    lastLba: u64(v, 40),
    attributes: v.getBigUint64(48, true),
    label,
  };
}

/** Decodes the entry array of `h` and checks its CRC and that the partitions fit and do not overlap. */
export function decodeEntries(bytes: Uint8Array, h: Header): Checked<Partition[]> {
  const len = h.entryCount * h.entrySize;
  if (bytes.length < len) return bad("entry array truncated");
  if (crc32(bytes.subarray(0, len)) !== h.entriesCrc) return bad("entry array CRC mismatch");
  const parts: Partition[] = [];
  for (let i = 0; i < h.entryCount; i++) {
    const e = decodeEntry(bytes, i * h.entrySize);
    if (e) parts.push(partition(i + 1, e));
  }
  const problem = checkPartitions(parts, h.firstUsable, h.lastUsable);
  return problem ? bad(problem) : { ok: true, value: parts };
}

/** What cgpt also refuses: a partition outside the usable range, two that overlap, a repeated unique GUID. */
export function checkPartitions(parts: readonly Partition[], firstUsable: number, lastUsable: number): string | null {
  const sized = parts.filter((p) => p.lastLba >= p.firstLba);
  for (const p of parts) {
    if (p.lastLba + 1 < p.firstLba) return `partition ${p.number} ends before it starts`;
    if (p.lastLba >= p.firstLba && (p.firstLba < firstUsable || p.lastLba > lastUsable))
      return `partition ${p.number} lies outside the usable sectors ${firstUsable}-${lastUsable}`;
  }
  const byStart = [...sized].sort((a, b) => a.firstLba - b.firstLba);
  for (let i = 1; i < byStart.length; i++) {
    const a = byStart[i - 1]!;
    const b = byStart[i]!;
    if (b.firstLba <= a.lastLba) return `partitions ${a.number} and ${b.number} overlap`;
  }
  const seen = new Map<string, number>();
  for (const p of parts) {
    const other = seen.get(p.uuid);
    if (other !== undefined) return `partitions ${other} and ${p.number} have the same unique GUID`;
    seen.set(p.uuid, p.number);
  }
  return null;
}

export function encodeEntries(t: Table): Uint8Array {
  const out = new Uint8Array(entriesSectors(t.entryCount, t.sectorSize) * t.sectorSize);
  const v = new DataView(out.buffer);
  for (const p of t.partitions) {
    const off = (p.number - 1) * ENTRY_SIZE;
    encodeGuid(p.type, out, off);
    encodeGuid(p.uuid, out, off + 16);
    v.setBigUint64(off + 32, BigInt(p.firstLba), true);
    v.setBigUint64(off + 40, BigInt(p.lastLba), true);
    v.setBigUint64(off + 48, p.attributes, true);
    for (let i = 0; i < Math.min(p.label.length, NAME_CHARS); i++)
      v.setUint16(off + NAME_OFFSET + i * 2, p.label.charCodeAt(i), true);
  }
  return out;
}

// ---- whole copies ----

export interface Copy {
  readonly headerLba: number;
  readonly header: Uint8Array;
  readonly entriesLba: number;
  readonly entries: Uint8Array;
}

/** The primary (LBA 1, entries at LBA 2) and backup (last LBA, entries just before it) copies of `t`. */
export function encodeCopies(t: Table): { primary: Copy; backup: Copy } {
  const entries = encodeEntries(t);
  const entriesCrc = crc32(entries.subarray(0, t.entryCount * ENTRY_SIZE));
  const last = t.sectors - 1;
  const backupEntriesLba = last - entries.length / t.sectorSize;
  const header = (currentLba: number, backupLba: number, entriesLba: number) => {
    const s = new Uint8Array(t.sectorSize);
    const v = new DataView(s.buffer);
    s.set(new TextEncoder().encode(SIGNATURE), 0);
    v.setUint32(8, REVISION, true);
    v.setUint32(12, HEADER_SIZE, true);
    v.setBigUint64(24, BigInt(currentLba), true);
    v.setBigUint64(32, BigInt(backupLba), true);
    v.setBigUint64(40, BigInt(t.firstUsable), true);
    v.setBigUint64(48, BigInt(t.lastUsable), true);
    encodeGuid(t.diskGuid, s, 56);
    v.setBigUint64(72, BigInt(entriesLba), true);
    v.setUint32(80, t.entryCount, true);
    v.setUint32(84, ENTRY_SIZE, true);
    v.setUint32(88, entriesCrc, true);
    v.setUint32(16, crc32(s.subarray(0, HEADER_SIZE)), true);
    return s;
  };
  return {
    primary: { headerLba: 1, header: header(1, last, 2), entriesLba: 2, entries },
    backup: { headerLba: last, header: header(last, 1, backupEntriesLba), entriesLba: backupEntriesLba, entries },
  };
}

/** Throws a one-line description when `t` cannot be written as a valid GPT on its device. */
export function checkTable(t: Table): void {
  const n = entriesSectors(t.entryCount, t.sectorSize);
  if (t.entryCount < 1 || t.entryCount > MAX_ENTRY_COUNT) throw new GptError(`entry count ${t.entryCount} out of range`);
  if (2 + n > t.firstUsable) throw new GptError(`first usable sector ${t.firstUsable} overlaps the primary entry array`);
  if (t.lastUsable >= t.sectors - 1 - n) throw new GptError(`last usable sector ${t.lastUsable} overlaps the backup entry array`);
  for (const p of t.partitions)
    if (p.number < 1 || p.number > t.entryCount) throw new GptError(`partition number ${p.number} out of 1-${t.entryCount}`);
  const problem = checkPartitions(t.partitions, t.firstUsable, t.lastUsable);
  if (problem) throw new GptError(problem);
}

/** The table a checked header and its entries describe. */
export function tableOf(h: Header, parts: Partition[], sectorSize: number, sectors: number): Table {
  return {
    sectorSize,
    sectors,
    diskGuid: h.diskGuid,
    firstUsable: h.firstUsable,
    lastUsable: h.lastUsable,
    entryCount: h.entryCount,
    partitions: parts,
  };
}

// ---- protective MBR ----

/** True when sector 0 carries the 0x55AA signature and a partition of type 0xEE (protective or hybrid). */
export function hasProtectiveMbr(mbr: Uint8Array): boolean {
  if (mbr[510] !== 0x55 || mbr[511] !== 0xaa) return false;
  for (let i = 0; i < 4; i++) if (mbr[446 + i * 16 + 4] === 0xee) return true;
  return false;
}

/** CHS of `lba` in the 255-head, 63-sector geometry sgdisk uses; 0xFFFFFF past cylinder 1023. */
function chs(lba: number): [number, number, number] {
  const cyl = Math.floor(lba / (255 * 63));
  if (cyl > 1023) return [0xff, 0xff, 0xff];
  const rem = lba % (255 * 63);
  const head = Math.floor(rem / 63);
  const sector = (rem % 63) + 1;
  return [head, sector | ((cyl >> 2) & 0xc0), cyl & 0xff];
}

/**
 * A protective MBR for a device of `sectors` sectors, as sgdisk writes it; the boot code and
 * disk signature of `old` (bytes 0-445, e.g. GRUB's boot.img) are kept.
 */
export function encodeProtectiveMbr(sectors: number, sectorSize: number, old?: Uint8Array): Uint8Array {
  const s = new Uint8Array(sectorSize);
  if (old) s.set(old.subarray(0, 446));
  const v = new DataView(s.buffer);
  const e = 446;
  s.set([0x00, 0x00, 0x02, 0x00, 0xee, ...chs(sectors - 1)], e);
  v.setUint32(e + 8, 1, true);
  v.setUint32(e + 12, Math.min(sectors - 1, 0xffffffff), true);
  s[510] = 0x55;
  s[511] = 0xaa;
  return s;
}

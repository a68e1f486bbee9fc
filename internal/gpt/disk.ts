// GPT on a block device or image file: find the trusted copy, repair the other, and write so that
// a crash at any byte leaves one valid table. A write goes to one copy, is fsynced, and only then
// touches the other; the copy written first is never the only valid one, so the old table survives
// a crash in the first write and the new one a crash in the second.
import { lockExclusive } from "../flock/flock.ts";
import { closeSync, fstatSync, fsyncSync, openSync, readFileSync, readSync, writeSync } from "node:fs";
import {
  checkTable,
  decodeEntries,
  decodeHeader,
  encodeCopies,
  encodeProtectiveMbr,
  entriesSectors,
  hasProtectiveMbr,
  tableOf,
  type Checked,
  type Copy,
  type Table,
} from "./codec.ts";
import { GptError } from "./errors.ts";
import { blockDir } from "./sysfs.ts";

export interface DiskState {
  readonly table: Table;
  readonly primary: Checked<Table>;
  readonly backup: Checked<Table>;
  readonly protectiveMbr: boolean;
  /** One line per thing a repair would fix; empty when both copies are valid and agree. */
  readonly problems: readonly string[];
}

interface Device {
  readonly fd: number;
  readonly bytes: number;
  /** From sysfs for a block device; null for an image file (probed from where the header is). */
  readonly sectorSize: number | null;
}

function openDevice(path: string, write: boolean): Device {
  let fd: number;
  try {
    fd = openSync(path, write ? "r+" : "r");
  } catch (e) {
    throw new GptError(`cannot open ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    const st = fstatSync(fd, { bigint: true });
    if (st.isFile()) return { fd, bytes: Number(st.size), sectorSize: null };
    if (!st.isBlockDevice()) throw new GptError(`${path} is neither an image file nor a block device`);
    const sys = blockDir(st.rdev);
    const bytes = Number(readFileSync(`${sys}/size`, "utf8").trim()) * 512;
    let sectorSize = 512;
    for (const q of [`${sys}/queue/logical_block_size`, `${sys}/../queue/logical_block_size`]) {
      try {
        sectorSize = Number(readFileSync(q, "utf8").trim());
        break;
      } catch {
        // a partition has no queue/ of its own; its disk's is one level up
      }
    }
    return { fd, bytes, sectorSize };
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

function readAt(fd: number, offset: number, length: number): Uint8Array {
  const b = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, b, done, length - done, offset + done);
    if (n === 0) break;
    done += n;
  }
  return b;
}

/** Test knob: write in small pieces with a pause between, so a test can kill -9 mid-copy. */
const SLOW_WRITE_MS = Number(process.env.COREOS_GPT_TEST_WRITE_DELAY_MS ?? 0);
const SLOW_PIECE = 64;

function writeAt(fd: number, offset: number, b: Uint8Array): void {
  const piece = SLOW_WRITE_MS > 0 ? SLOW_PIECE : b.length;
  for (let done = 0; done < b.length; ) {
    const n = writeSync(fd, b, done, Math.min(piece, b.length - done), offset + done);
    done += n;
    if (SLOW_WRITE_MS > 0) Bun.sleepSync(SLOW_WRITE_MS);
  }
}

function readCopy(d: Device, lba: number, sectorSize: number, sectors: number): Checked<Table> {
  const h = decodeHeader(readAt(d.fd, lba * sectorSize, sectorSize), lba, sectors);
  if (!h.ok) return h;
  const len = entriesSectors(h.value.entryCount, sectorSize) * sectorSize;
  const e = decodeEntries(readAt(d.fd, h.value.entriesLba * sectorSize, len), h.value);
  if (!e.ok) return e;
  return { ok: true, value: tableOf(h.value, e.value, sectorSize, sectors) };
}

function sameTable(a: Table, b: Table): boolean {
  const ea = encodeCopies(a).primary;
  const eb = encodeCopies(b).primary;
  return Buffer.from(ea.header).equals(Buffer.from(eb.header)) && Buffer.from(ea.entries).equals(Buffer.from(eb.entries));
}

function inspectDevice(d: Device, path: string): DiskState {
  const probe = d.sectorSize === null ? [512, 4096] : [d.sectorSize];
  let failure: string | null = null;
  for (const sectorSize of probe) {
    const sectors = Math.floor(d.bytes / sectorSize);
    if (sectors < 3) throw new GptError(`${path} is too small for a GPT (${d.bytes} bytes)`);
    const mbr = readAt(d.fd, 0, 512);
    const primary = readCopy(d, 1, sectorSize, sectors);
    const last = sectors - 1;
    let backup = readCopy(d, last, sectorSize, sectors);
    const problems: string[] = [];
    if (!primary.ok) problems.push(`primary GPT is invalid (${primary.reason})`);
    if (!backup.ok && primary.ok) {
      // A disk that grew keeps its backup where the primary's header points, before the new end.
      const alt = readAltBackup(d, sectorSize, sectors);
      if (alt?.ok) {
        backup = alt;
        problems.push("backup GPT is not at the end of the disk");
      }
    }
    if (!backup.ok) problems.push(`backup GPT is invalid (${backup.reason})`);
    if (primary.ok && backup.ok && !sameTable(primary.value, backup.value))
      problems.push("primary and backup GPT differ (the primary wins)");
    const table = primary.ok ? primary.value : backup.ok ? backup.value : null;
    const protectiveMbr = hasProtectiveMbr(mbr);
    if (table && !protectiveMbr) problems.push("no protective MBR");
    if (table) return { table, primary, backup, protectiveMbr, problems };
    // Report what the first (usual) sector size found, not the probe's fallback.
    failure ??= `primary: ${primary.ok ? "ok" : primary.reason}; backup: ${backup.ok ? "ok" : backup.reason}`;
  }
  throw new GptError(`${path}: no valid GPT (${failure})`);
}

function readAltBackup(d: Device, sectorSize: number, sectors: number): Checked<Table> | null {
  const v = new DataView(readAt(d.fd, sectorSize, sectorSize).buffer);
  const alt = Number(v.getBigUint64(32, true));
  if (alt <= 1 || alt >= sectors - 1) return null;
  return readCopy(d, alt, sectorSize, sectors);
}

function writeCopy(fd: number, c: Copy, sectorSize: number): void {
  writeAt(fd, c.entriesLba * sectorSize, c.entries);
  writeAt(fd, c.headerLba * sectorSize, c.header);
  fsyncSync(fd);
}

/**
 * Writes `t` to both copies: first the copy that is not the only valid one, fsync, then the
 * other, fsync. A missing protective MBR is added first (its own fsync).
 */
function writeDevice(d: Device, state: DiskState | null, t: Table): void {
  checkTable(t);
  if (!state?.protectiveMbr) {
    writeAt(d.fd, 0, encodeProtectiveMbr(t.sectors, t.sectorSize, readAt(d.fd, 0, t.sectorSize)));
    fsyncSync(d.fd);
  }
  const { primary, backup } = encodeCopies(t);
  const backupFirst = state !== null && state.primary.ok && !state.backup.ok;
  for (const c of backupFirst ? [backup, primary] : [primary, backup]) writeCopy(d.fd, c, t.sectorSize);
}

/** A writer holds the disk's flock from its read to its last fsync, so two read-modify-writes never interleave. */
function withDevice<T>(path: string, write: boolean, f: (d: Device) => T): T {
  const d = openDevice(path, write);
  try {
    if (write) lockExclusive(d.fd);
    return f(d);
  } finally {
    closeSync(d.fd);
  }
}

/** Both copies, which one is trusted, and what is wrong; read-only. */
export function inspectDisk(path: string): DiskState {
  return withDevice(path, false, (d) => inspectDevice(d, path));
}

/** The table of the trusted copy (the primary when valid, else the backup). */
export function readDisk(path: string): Table {
  return inspectDisk(path).table;
}

/** Rewrites whatever is damaged from the trusted copy; returns what was wrong (empty: nothing to do). */
export function repairDisk(path: string): readonly string[] {
  return withDevice(path, true, (d) => {
    const s = inspectDevice(d, path);
    if (s.problems.length > 0) writeDevice(d, s, s.table);
    return s.problems;
  });
}

/**
 * Reads, applies `f`, writes the result back when it differs or when a copy needed repair.
 * Returns the new table and whatever `f` reported alongside it.
 */
export function updateDisk<R>(path: string, f: (t: Table) => { table: Table; result: R }): { table: Table; result: R } {
  return withDevice(path, true, (d) => {
    const s = inspectDevice(d, path);
    const out = f(s.table);
    if (s.problems.length > 0 || !sameTable(out.table, s.table)) writeDevice(d, s, out.table);
    return out;
  });
}

/** Writes a new table over whatever the device holds (disk init). */
export function writeNewTable(path: string, t: Table): void {
  withDevice(path, true, (d) => {
    if (d.bytes < t.sectors * t.sectorSize) throw new GptError(`${path} is smaller than the table's disk`);
    writeDevice(d, null, t);
  });
}

/** Size in bytes of the image file or block device, and the device's sector size (null for a file). */
export function deviceGeometry(path: string): { bytes: number; sectorSize: number | null } {
  return withDevice(path, false, (d) => ({ bytes: d.bytes, sectorSize: d.sectorSize }));
}

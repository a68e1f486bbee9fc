// The GPT library the update daemon and `coreos update-engine disk` use. Every mutation reads the
// trusted copy, repairs the other on the way, and writes crash-safely (see disk.ts).
import { closeSync, existsSync, openSync, statSync, truncateSync } from "node:fs";
import type { BootAttrs } from "./attrs.ts";
import type { Partition, Table } from "./codec.ts";
import { deviceGeometry, readDisk, updateDisk, writeNewTable } from "./disk.ts";
import { coreosLayout, type LayoutSizes } from "./layout.ts";
import { GptError } from "./errors.ts";
import { markGoodTable, nextTable, prioritizeTable, switchTable, withAttrs, type PrioritizeOptions } from "./prio.ts";

export type { BootAttrs } from "./attrs.ts";
export type { Partition, Table } from "./codec.ts";
export { inspectDisk, readDisk, repairDisk, type DiskState } from "./disk.ts";
export { TYPE, USR_A_UUID, USR_B_UUID } from "./guid.ts";
export { coreosLayout, LAYOUTS, type LayoutName, type LayoutSizes } from "./layout.ts";
export { GptError } from "./errors.ts";
export { choose, isUsr, partitionByNumber, partitionByUuid, partitionRange, usrPartitions } from "./prio.ts";
export { findRunningUsr, partitionDevice, runningUsr, usrFromCmdline, type FindUsrOptions, type RunningUsr, type UsrRef } from "./rootdev.ts";

function update(path: string, f: (t: Table) => Table): Table {
  return updateDisk(path, (t) => ({ table: f(t), result: null })).table;
}

/** `cgpt prioritize -i N` of Flatcar (§4.5): partition n gets the top priority among the USR slots. */
export function prioritize(path: string, n: number, o: Omit<PrioritizeOptions, "candidate"> = {}): Table {
  return update(path, (t) => prioritizeTable(t, n, o));
}

/** flatcar-postinst (§4.4): the freshly written slot n gets successful=0, tries=1 and the top priority. */
export function switchTo(path: string, n: number): Table {
  return update(path, (t) => switchTable(t, n));
}

/** setgoodroot (§4.6): slot n gets successful=1, tries=0 and the top priority. */
export function markGood(path: string, n: number): Table {
  return update(path, (t) => markGoodTable(t, n));
}

/** `cgpt add -i N -P -T -S`: set some of partition n's boot attributes. */
export function setAttributes(path: string, n: number, set: Partial<BootAttrs>): Table {
  return update(path, (t) => withAttrs(t, n, set));
}

/**
 * What the boot loader does (gptprio.next, §4.3): choose the USR slot to boot, spend one of its
 * tries and write the table back. Null when no slot is bootable.
 */
export function next(path: string): Partition | null {
  return updateDisk(path, (t) => {
    const r = nextTable(t);
    return r ? { table: r.table, result: r.chosen } : { table: t, result: null };
  }).result;
}

export interface InitOptions {
  /** Size of the image in bytes; the file is created or extended to it. Default: its current size. */
  bytes?: number;
  sizes: LayoutSizes;
  /** Default: the block device's logical sector size, 512 for an image file. */
  sectorSize?: number;
  diskGuid?: string;
  /** Write over a valid GPT already there. */
  force?: boolean;
}

/** `disk init`: the CoreOS layout (§4.1) on an image file (created if missing) or a device. */
export function initDisk(path: string, o: InitOptions): Table {
  if (!existsSync(path)) {
    if (o.bytes === undefined) throw new GptError(`${path} does not exist (give a size to create it)`);
    closeSync(openSync(path, "wx"));
  }
  if (!o.force) {
    let valid = false;
    try {
      readDisk(path);
      valid = true;
    } catch {
      // nothing worth keeping
    }
    if (valid) throw new GptError(`${path} already holds a valid GPT (use --force to replace it)`);
  }
  const dev = deviceGeometry(path);
  const bytes = o.bytes ?? dev.bytes;
  if (bytes < dev.bytes) throw new GptError(`${path} holds ${dev.bytes} bytes, more than the ${bytes} asked for`);
  if (bytes > dev.bytes) {
    if (!statSync(path).isFile()) throw new GptError(`${path} holds ${dev.bytes} bytes, fewer than the ${bytes} asked for`);
    truncateSync(path, bytes);
  }
  const sectorSize = o.sectorSize ?? dev.sectorSize ?? 512;
  if (dev.sectorSize !== null && sectorSize !== dev.sectorSize)
    throw new GptError(`${path} has ${dev.sectorSize}-byte sectors, not ${sectorSize}`);
  const t = coreosLayout({ bytes, sizes: o.sizes, sectorSize, diskGuid: o.diskGuid });
  writeNewTable(path, t);
  return t;
}

// The CoreOS/Flatcar disk layout of §4.1 (build_library/disk_layout.json), and a scaled-down one
// (the lab layout of §4.8) for tests and small images. ROOT takes whatever is left.
import { encodeAttrs } from "./attrs.ts";
import { DEFAULT_ENTRY_COUNT, entriesSectors, partition, type Partition, type Table } from "./codec.ts";
import { randomGuid, TYPE, USR_A_UUID, USR_B_UUID } from "./guid.ts";
import { GptError } from "./errors.ts";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

export interface LayoutSizes {
  /** Partition starts are multiples of this many bytes. */
  readonly align: number;
  readonly efi: number;
  readonly bios: number;
  readonly usr: number;
  readonly oem: number;
  readonly oemConfig: number;
}

export const LAYOUTS = {
  flatcar: { align: 2 * MiB, efi: 1 * GiB, bios: 2 * MiB, usr: 2 * GiB, oem: 1 * GiB, oemConfig: 64 * MiB },
  small: { align: 1 * MiB, efi: 4 * MiB, bios: 1 * MiB, usr: 16 * MiB, oem: 8 * MiB, oemConfig: 1 * MiB },
} as const satisfies Record<string, LayoutSizes>;

export type LayoutName = keyof typeof LAYOUTS;

/** The disk GUID images are built with; the first boot randomizes it. */
export const IMAGE_DISK_GUID = "00000000-0000-0000-0000-000000000001";

export interface LayoutOptions {
  readonly bytes: number;
  readonly sizes: LayoutSizes;
  readonly sectorSize?: number;
  readonly diskGuid?: string;
}

/** Smallest ROOT we will create; anything less means the disk is too small for the layout. */
const MIN_ROOT = 1 * MiB;

export function coreosLayout(o: LayoutOptions): Table {
  const ss = o.sectorSize ?? 512;
  const sectors = Math.floor(o.bytes / ss);
  const entrySectors = entriesSectors(DEFAULT_ENTRY_COUNT, ss);
  const firstUsable = 2 + entrySectors;
  const lastUsable = sectors - 2 - entrySectors;
  const z = o.sizes;
  for (const [name, v] of Object.entries(z))
    if (!Number.isSafeInteger(v) || v <= 0 || v % ss !== 0) throw new GptError(`${name} size ${v} is not a positive multiple of ${ss} bytes`);
  if (z.align % ss !== 0) throw new GptError(`alignment ${z.align} is not a multiple of the sector size ${ss}`);
  const align = z.align / ss;
  const plan: [number, string, string, number | null, string | null][] = [
    [1, "EFI-SYSTEM", TYPE.efi, z.efi, null],
    [2, "BIOS-BOOT", TYPE.bios, z.bios, null],
    [3, "USR-A", TYPE.usr, z.usr, USR_A_UUID],
    [4, "USR-B", TYPE.usr, z.usr, USR_B_UUID],
    [6, "OEM", TYPE.data, z.oem, null],
    [7, "OEM-CONFIG", TYPE.reserved, z.oemConfig, null],
    [9, "ROOT", TYPE.resize, null, null],
  ];
  const parts: Partition[] = [];
  let next = Math.ceil(firstUsable / align) * align;
  for (const [number, label, type, bytes, uuid] of plan) {
    // ROOT ends on an alignment boundary too (sgdisk -v cautions otherwise).
    const size = bytes === null ? Math.floor((lastUsable + 1) / align) * align - next : bytes / ss;
    if (size * ss < (bytes ?? MIN_ROOT))
      throw new GptError(`${o.bytes} bytes is too small for the layout (no room left for ${label})`);
    const attributes = number === 3 ? encodeAttrs(0n, { priority: 1, successful: true }) : 0n;
    parts.push(partition(number, { type, uuid: uuid ?? randomGuid(), firstLba: next, lastLba: next + size - 1, attributes, label }));
    next = Math.ceil((next + size) / align) * align;
  }
  return {
    sectorSize: ss,
    sectors,
    diskGuid: o.diskGuid ?? IMAGE_DISK_GUID,
    firstUsable,
    lastUsable,
    entryCount: DEFAULT_ENTRY_COUNT,
    partitions: parts,
  };
}

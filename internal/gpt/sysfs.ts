// Block devices through sysfs: a device number's directory, a partition's disk and number, the
// device below a device-mapper target (verity /usr). `sysfs` is a parameter so tests can give a tree.
import { readdirSync, readFileSync, realpathSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";

export const SYSFS = "/sys";

/** /sys/dev/block/MAJOR:MINOR of a Linux dev_t (major in bits 8-19 and 32-43, minor in 0-7 and 20-31). */
export function blockDir(dev: bigint, sysfs = SYSFS): string {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return `${sysfs}/dev/block/${major}:${minor}`;
}

/** The device a stacked one (dm-verity, dm-crypt) sits on, followed to the bottom. */
export function lowestDevice(dir: string): string {
  let sys = realpathSync(dir);
  for (let depth = 0; depth < 8; depth++) {
    let slaves: string[] = [];
    try {
      slaves = readdirSync(`${sys}/slaves`);
    } catch {
      // not a stacked device
    }
    if (slaves.length === 0) break;
    sys = realpathSync(`${sys}/slaves/${slaves[0]}`);
  }
  return sys;
}

/** The whole disk (/dev/NAME) and number of the partition whose sysfs directory is `dir`; null for a whole disk. */
export function partitionOf(dir: string): { disk: string; number: number } | null {
  const sys = realpathSync(dir);
  let raw: string;
  try {
    raw = readFileSync(`${sys}/partition`, "utf8");
  } catch {
    return null;
  }
  return { disk: `/dev/${basename(dirname(sys))}`, number: Number(raw.trim()) };
}

/**
 * A partition's device node when `disk` is a block device: the kernel's name for it from sysfs
 * (so a /dev/disk/by-id link works too), else the kernel's naming rule (sda → sda4, nvme0n1 →
 * nvme0n1p4). An image file is its own answer.
 */
export function partitionPath(disk: string, n: number, sysfs = SYSFS): string {
  const st = statSync(disk, { bigint: true });
  if (!st.isBlockDevice()) return disk;
  let dir: string | null = null;
  try {
    dir = realpathSync(blockDir(st.rdev, sysfs));
  } catch {
    // no sysfs entry: the naming rule below
  }
  for (const name of dir === null ? [] : readdirSync(dir)) {
    let number: string;
    try {
      number = readFileSync(join(dir!, name, "partition"), "utf8").trim();
    } catch {
      continue;
    }
    if (number === String(n)) return `/dev/${name}`;
  }
  const path = realpathSync(disk);
  return /[0-9]$/.test(path) ? `${path}p${n}` : `${path}${n}`;
}

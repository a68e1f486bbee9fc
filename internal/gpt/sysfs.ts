// Block devices through sysfs: a device number's directory, a partition's disk and number, the
// device below a device-mapper target (verity /usr). `sysfs` is a parameter so tests can give a tree.
import { readdirSync, readFileSync, realpathSync } from "node:fs";
import { basename, dirname } from "node:path";

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

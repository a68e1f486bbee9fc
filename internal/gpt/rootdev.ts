// Which partition holds the running /usr: what `rootdev -s /usr` answers for setgoodroot (§4.6).
// The kernel command line names it when the boot loader picked it (mount.usr= / verity.usr=);
// otherwise the block device under the mount, through device-mapper (verity) to its partition.
import { readFileSync, realpathSync, statSync } from "node:fs";
import { basename } from "node:path";
import { readDisk } from "./disk.ts";
import { GptError } from "./errors.ts";
import { partitionByUuid } from "./prio.ts";
import { blockDir, lowestDevice, partitionOf, SYSFS } from "./sysfs.ts";

export type UsrRef = { readonly partuuid: string } | { readonly partlabel: string };

/** `mount.usr=PARTUUID=...` (or verity.usr=, or PARTLABEL=) from a kernel command line. */
export function usrFromCmdline(cmdline: string): UsrRef | null {
  let ref: UsrRef | null = null;
  for (const word of cmdline.trim().split(/\s+/)) {
    const m = /^(mount|verity)\.usr=(PARTUUID|PARTLABEL)=(.+)$/.exec(word);
    if (!m) continue;
    // verity.usr= names the data partition; mount.usr= is then /dev/mapper/usr.
    ref = m[2] === "PARTUUID" ? { partuuid: m[3]!.toUpperCase() } : { partlabel: m[3]! };
    if (m[1] === "verity") break;
  }
  return ref;
}

export interface RunningUsr {
  /** The whole disk, e.g. /dev/sda. */
  readonly disk: string;
  readonly number: number;
}

/** The disk and partition number under `mount`, following device-mapper to the device below. */
export function runningUsr(mount = "/usr", sysfs = SYSFS): RunningUsr {
  const dir = blockDir(statSync(mount, { bigint: true }).dev, sysfs);
  let sys: string;
  try {
    sys = lowestDevice(dir);
  } catch {
    throw new GptError(`${mount} is not on a block device (${dir} does not exist)`);
  }
  const p = partitionOf(sys);
  if (!p) throw new GptError(`${mount} is on /dev/${basename(sys)}, which is not a partition`);
  return p;
}

/** A partition device given where a disk is expected (`disk switch /dev/sda4`, as Flatcar's cgpt takes). */
export function partitionDevice(path: string, sysfs = SYSFS): RunningUsr | null {
  let st;
  try {
    st = statSync(path, { bigint: true });
  } catch {
    return null;
  }
  if (!st.isBlockDevice()) return null;
  try {
    return partitionOf(blockDir(st.rdev, sysfs));
  } catch {
    return null;
  }
}

export interface FindUsrOptions {
  /** The disk to look on (default: the one under /usr). */
  readonly disk?: string;
  /** Where the kernel command line is read (default /proc/cmdline; a test gives its own). */
  readonly cmdlineFile?: string;
}

/**
 * The partition of the running /usr, as setgoodroot needs it: the one the boot loader named on
 * the kernel command line, looked up on `disk`; else the partition under /usr, which must then
 * be on `disk` when one is given.
 */
export function findRunningUsr(o: FindUsrOptions = {}): RunningUsr {
  const file = o.cmdlineFile ?? "/proc/cmdline";
  let cmdline = "";
  try {
    cmdline = readFileSync(file, "utf8");
  } catch (e) {
    // Without /proc (a chroot, a container), fall back to the device under /usr.
    if (o.cmdlineFile !== undefined) throw new GptError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code}`);
  }
  const ref = usrFromCmdline(cmdline);
  if (ref) {
    const disk = o.disk ?? runningUsr().disk;
    const t = readDisk(disk);
    const p = "partuuid" in ref ? partitionByUuid(t, ref.partuuid) : t.partitions.find((x) => x.label === ref.partlabel);
    const name = "partuuid" in ref ? `PARTUUID=${ref.partuuid}` : `PARTLABEL=${ref.partlabel}`;
    if (!p) throw new GptError(`the running /usr (${name}) is not a partition of ${disk}`);
    return { disk, number: p.number };
  }
  const r = runningUsr();
  if (o.disk !== undefined && realpathSync(o.disk) !== realpathSync(r.disk))
    throw new GptError(`the running /usr is on ${r.disk} partition ${r.number}, not on ${o.disk} (give -i N)`);
  return r;
}

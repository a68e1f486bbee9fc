// Which partition holds the running /usr: what `rootdev -s /usr` answers for setgoodroot (§4.6).
// The kernel command line names it when the boot loader picked it (mount.usr= / verity.usr=);
// otherwise the block device under the mount, through device-mapper (verity) to its partition.
import { readdirSync, readFileSync, realpathSync, statSync } from "node:fs";
import { basename, dirname } from "node:path";
import { readDisk } from "./disk.ts";
import { GptError } from "./errors.ts";
import { partitionByUuid } from "./prio.ts";

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
export function runningUsr(mount = "/usr"): RunningUsr {
  const dev = statSync(mount, { bigint: true }).dev;
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  let sys: string;
  try {
    sys = realpathSync(`/sys/dev/block/${major}:${minor}`);
  } catch {
    throw new GptError(`${mount} is not on a block device (device ${major}:${minor})`);
  }
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
  let number: number;
  try {
    number = Number(readFileSync(`${sys}/partition`, "utf8").trim());
  } catch {
    throw new GptError(`${mount} is on /dev/${basename(sys)}, which is not a partition`);
  }
  return { disk: `/dev/${basename(dirname(sys))}`, number };
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

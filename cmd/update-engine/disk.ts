// coreos update-engine disk: the GPT verbs (cgpt's show/prioritize/add/repair, GRUB's gptprio.next,
// setgoodroot, and init for images). Flags here; the table work is internal/gpt.
import { FlagError, parseFlags, usage, type FlagDef } from "../../internal/flags/flags.ts";
import {
  GptError,
  initDisk,
  inspectDisk,
  LAYOUTS,
  markGood,
  next,
  partitionByNumber,
  prioritize,
  repairDisk,
  findRunningUsr,
  partitionDevice,
  runningUsr,
  setAttributes,
  switchTo,
  TYPE,
  type BootAttrs,
  type DiskState,
  type LayoutName,
  type Partition,
  type Table,
} from "../../internal/gpt/index.ts";
import { typeName } from "../../internal/gpt/guid.ts";
import { entriesSectors } from "../../internal/gpt/codec.ts";
import { pickCommand } from "../subcommand.ts";

const ENV_PREFIX = "COREOS_DISK";
const u = (description: string): FlagDef => ({ kind: "uint", default: 0, description });
const b = (description: string): FlagDef => ({ kind: "bool", default: false, description });
const s = (d: string, description: string): FlagDef => ({ kind: "string", default: d, description });

const COMMANDS = {
  show: {
    args: "DISK",
    about: "print the table like `cgpt show` (with -i N and one of -b -s -t -u -l -P -T -S -A: one value)",
    flags: {
      i: u("partition number"),
      q: b("one line per partition"),
      b: b("print the first sector"),
      s: b("print the size in sectors"),
      t: b("print the type GUID"),
      u: b("print the unique GUID (PARTUUID)"),
      l: b("print the label"),
      P: b("print the priority"),
      T: b("print the tries"),
      S: b("print the successful flag"),
      A: b("print attribute bits 48-63 (as Debian's cgpt)"),
    },
  },
  init: {
    args: "DISK",
    about: "write the CoreOS partition layout to an image file (created or extended to --size) or a device",
    flags: {
      size: s("", "disk size, e.g. 8G or 64M (default: the file's current size)"),
      layout: s("flatcar", "partition sizes: flatcar (as shipped) or small (the scaled-down test layout)"),
      "efi-size": s("", "EFI-SYSTEM size (default from --layout)"),
      "usr-size": s("", "size of each of USR-A and USR-B (default from --layout)"),
      "oem-size": s("", "OEM size (default from --layout)"),
      "oem-config-size": s("", "OEM-CONFIG size (default from --layout)"),
      "sector-size": { kind: "uint", default: 512, description: "logical sector size of an image file, 512 or 4096 (a device's own is used)" } as FlagDef,
      "disk-guid": s("00000000-0000-0000-0000-000000000001", "the disk GUID (images are built with this one)"),
      force: b("replace a valid GPT already on DISK"),
    },
  },
  prioritize: {
    args: "DISK -i N | PARTITION",
    about: "give USR partition -i N the top priority and renumber the others (cgpt prioritize)",
    flags: { i: u("partition number"), P: u("highest priority to assign (0 or unset: the number of priority groups, at most 15)"), f: b("move the whole priority group of -i N") },
  },
  switch: {
    args: "DISK -i N | PARTITION",
    about: "make USR partition -i N boot next, once (what the post-install step does: -S0 -T1, prioritize)",
    flags: { i: u("partition number") },
  },
  next: {
    args: "DISK",
    about: "choose the USR partition to boot as GRUB's gptprio.next does, spend one try, print it",
    flags: {},
  },
  "mark-good": {
    args: "[DISK | PARTITION]",
    about: "mark the running USR partition (or -i N) good: -S1 -T0, prioritize (setgoodroot)",
    flags: {
      i: u("partition number (default: the one holding the running /usr)"),
      cmdline: s("/proc/cmdline", "kernel command line naming the running /usr (mount.usr= / verity.usr=)"),
    },
  },
  set: {
    args: "DISK -i N | PARTITION",
    about: "set boot attributes of partition -i N (cgpt add -P -T -S)",
    flags: { i: u("partition number"), P: u("priority 0-15"), T: u("tries 0-15"), S: u("successful 0 or 1") },
  },
  repair: {
    args: "DISK",
    about: "rewrite a damaged or missing copy of the table (and the protective MBR) from the valid one",
    flags: {},
  },
} as const satisfies Record<string, { args: string; about: string; flags: Record<string, FlagDef> }>;
type Command = keyof typeof COMMANDS;

function help(): string {
  const w = Math.max(...Object.keys(COMMANDS).map((k) => k.length));
  return `Usage: coreos update-engine disk <command> [flags] DISK\n\n${Object.entries(COMMANDS)
    .map(([k, c]) => `  ${k.padEnd(w)}  ${c.about}`)
    .join("\n")}\n\nSizes take K, M, G, T suffixes (powers of 1024).\n`;
}

const SIZE_UNITS: Record<string, number> = { "": 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };

function parseSize(flag: string, raw: string): number {
  const m = /^([0-9]+)([KMGT]?)(i?B)?$/i.exec(raw);
  const n = m ? Number(m[1]) * SIZE_UNITS[m[2]!.toUpperCase()]! : NaN;
  if (!Number.isSafeInteger(n) || n <= 0) throw new FlagError(`invalid value "${raw}" for flag -${flag}: want a size like 64M or 8G`);
  return n;
}

function one(positionals: string[], optional = false): string | undefined {
  if (positionals.length > 1) throw new FlagError(`one DISK expected, got ${positionals.length} arguments: ${positionals.join(" ")}`);
  if (positionals.length === 0 && !optional) throw new FlagError("missing DISK (an image file or block device)");
  return positionals[0];
}

function needPartition(given: Set<string>, i: number): number {
  if (!given.has("i")) throw new FlagError("missing -i N (the partition number)");
  if (i < 1) throw new FlagError(`invalid partition number ${i}`);
  return i;
}

/** DISK -i N, or a partition device alone (`/dev/sda4`, as Flatcar's cgpt takes it). */
function slot(disk: string, given: Set<string>, i: number): { disk: string; number: number } {
  const part = partitionDevice(disk);
  if (part && given.has("i")) throw new FlagError(`${disk} is a partition: give its disk with -i N, or it alone`);
  return part ?? { disk, number: needPartition(given, i) };
}

function nibble(flag: string, v: number, max = 15): number {
  if (v > max) throw new FlagError(`invalid value ${v} for flag -${flag}: must be 0-${max}`);
  return v;
}

const out = (line: string) => void process.stdout.write(`${line}\n`);

function warn(state: DiskState): void {
  for (const p of state.problems) process.stderr.write(`WARNING: ${p}; run \`coreos update-engine disk repair\`\n`);
}

const row = (start: number | string, size: number | string, part: number | string, contents: string) =>
  `${String(start).padStart(12)}${String(size).padStart(12)}${String(part).padStart(8)}  ${contents}`;

function attrLine(p: Partition): string | null {
  if (p.type === TYPE.usr || p.type === TYPE.chromeosKernel)
    return `Attr: priority=${p.priority} tries=${p.tries} successful=${p.successful ? 1 : 0}`;
  const low = p.attributes & 0xffffffffffffn;
  return low !== 0n || p.attributes >> 48n !== 0n ? `Attr: [${(p.attributes >> 48n).toString(16)}]` : null;
}

function showTable(t: Table, quick: boolean): void {
  const sizeOf = (p: Partition) => p.lastLba - p.firstLba + 1;
  const parts = [...t.partitions].sort((a, b) => a.firstLba - b.firstLba || a.number - b.number);
  if (quick) {
    for (const p of parts) out(row(p.firstLba, sizeOf(p), p.number, typeName(p.type)));
    return;
  }
  const n = entriesSectors(t.entryCount, t.sectorSize);
  out(row("start", "size", "part", "contents"));
  out(row(0, 1, "", "PMBR"));
  out(row(1, 1, "", "Pri GPT header"));
  out(row(2, n, "", "Pri GPT table"));
  const more = (s: string) => out(row("", "", "", s));
  for (const p of parts) {
    out(row(p.firstLba, sizeOf(p), p.number, `Label: "${p.label}"`));
    more(`Type: ${typeName(p.type)}`);
    more(`UUID: ${p.uuid}`);
    const a = attrLine(p);
    if (a) more(a);
  }
  out(row(t.sectors - 1 - n, n, "", "Sec GPT table"));
  out(row(t.sectors - 1, 1, "", "Sec GPT header"));
}

function show(disk: string, v: Record<string, string | number | boolean>, given: Set<string>): number {
  const state = inspectDisk(disk);
  warn(state);
  const picks = (["b", "s", "t", "u", "l", "P", "T", "S", "A"] as const).filter((k) => v[k] === true);
  if (picks.length > 0 && !given.has("i")) throw new FlagError(`-${picks[0]} needs -i N`);
  if (picks.length > 1) throw new FlagError(`only one of -b -s -t -u -l -P -T -S -A at a time`);
  if (given.has("i")) {
    const p = partitionByNumber(state.table, needPartition(given, Number(v.i)));
    const pick = picks[0];
    const value: Record<string, string> = {
      b: String(p.firstLba),
      s: String(p.lastLba - p.firstLba + 1),
      t: p.type,
      u: p.uuid,
      l: p.label,
      P: String(p.priority),
      T: String(p.tries),
      S: p.successful ? "1" : "0",
      A: `0x${(p.attributes >> 48n).toString(16)}`,
    };
    if (pick) out(value[pick]!);
    else showTable({ ...state.table, partitions: [p] }, Boolean(v.q));
    return 0;
  }
  showTable(state.table, Boolean(v.q));
  return 0;
}

function init(disk: string, v: Record<string, string | number | boolean>, given: Set<string>): number {
  const layout = String(v.layout);
  if (!(layout in LAYOUTS)) throw new FlagError(`invalid value "${layout}" for flag -layout: want flatcar or small`);
  const base = LAYOUTS[layout as LayoutName];
  const opt = (flag: string, dflt: number) => (v[flag] === "" ? dflt : parseSize(flag, String(v[flag])));
  const sectorSize = Number(v["sector-size"]);
  if (sectorSize !== 512 && sectorSize !== 4096) throw new FlagError(`invalid value ${sectorSize} for flag -sector-size: want 512 or 4096`);
  const t = initDisk(disk, {
    bytes: v.size === "" ? undefined : parseSize("size", String(v.size)),
    sizes: {
      ...base,
      efi: opt("efi-size", base.efi),
      usr: opt("usr-size", base.usr),
      oem: opt("oem-size", base.oem),
      oemConfig: opt("oem-config-size", base.oemConfig),
    },
    sectorSize: given.has("sector-size") ? sectorSize : undefined,
    diskGuid: String(v["disk-guid"]),
    force: Boolean(v.force),
  });
  process.stderr.write(`${disk}: ${t.partitions.length} partitions, ${t.sectors} sectors of ${t.sectorSize} bytes\n`);
  return 0;
}

async function runCommand(cmd: Command, args: string[]): Promise<number> {
  const defs: Record<string, FlagDef> = COMMANDS[cmd].flags;
  const p = parseFlags(defs, args, process.env as Record<string, string | undefined>, ENV_PREFIX);
  if (p.help) {
    const c = COMMANDS[cmd];
    process.stdout.write(`Usage: coreos update-engine disk ${cmd} [flags] ${c.args}\n\n${c.about}\n\n${usage(defs, ENV_PREFIX)}\n`);
    return 0;
  }
  const v = p.values as Record<string, string | number | boolean>;
  const given = p.given as Set<string>;
  const i = Number(v.i ?? 0);
  switch (cmd) {
    case "show":
      return show(one(p.positionals)!, v, given);
    case "init":
      return init(one(p.positionals)!, v, given);
    case "prioritize": {
      // cgpt's -P 0 means "not given" too.
      const max = Number(v.P) === 0 ? undefined : nibble("P", Number(v.P));
      const t = slot(one(p.positionals)!, given, i);
      prioritize(t.disk, t.number, { maxPriority: max, friends: Boolean(v.f) });
      return 0;
    }
    case "switch": {
      const t = slot(one(p.positionals)!, given, i);
      switchTo(t.disk, t.number);
      return 0;
    }
    case "next": {
      const disk = one(p.positionals)!;
      const chosen = next(disk);
      if (!chosen) throw new GptError(`${disk}: no bootable USR partition (none has priority > 0 and tries left or successful)`);
      out(`usr_device=${disk},gpt${chosen.number}`);
      out(`usr_uuid=${chosen.uuid.toLowerCase()}`);
      return 0;
    }
    case "mark-good": {
      const disk = one(p.positionals, true);
      const r =
        disk !== undefined && (given.has("i") || partitionDevice(disk))
          ? slot(disk, given, i)
          : given.has("i")
            ? { disk: runningUsr().disk, number: needPartition(given, i) }
            : findRunningUsr({ disk, cmdlineFile: given.has("cmdline") ? String(v.cmdline) : undefined });
      markGood(r.disk, r.number);
      return 0;
    }
    case "set": {
      const t = slot(one(p.positionals)!, given, i);
      const set: { -readonly [K in keyof BootAttrs]?: BootAttrs[K] } = {};
      if (given.has("P")) set.priority = nibble("P", Number(v.P));
      if (given.has("T")) set.tries = nibble("T", Number(v.T));
      if (given.has("S")) set.successful = nibble("S", Number(v.S), 1) === 1;
      if (Object.keys(set).length === 0) throw new FlagError("nothing to set: give -P, -T or -S");
      setAttributes(t.disk, t.number, set);
      return 0;
    }
    case "repair": {
      const fixed = repairDisk(one(p.positionals)!);
      for (const f of fixed) process.stderr.write(`repaired: ${f}\n`);
      return 0;
    }
  }
}

export async function run(args: string[]): Promise<number> {
  const picked = pickCommand(args, COMMANDS, { name: "coreos update-engine disk", help });
  if ("exit" in picked) return picked.exit;
  const { cmd, rest } = picked;
  try {
    return await runCommand(cmd, rest);
  } catch (e) {
    if (e instanceof FlagError) {
      process.stderr.write(`coreos update-engine disk ${cmd}: ${e.message}\n`);
      return 2;
    }
    // A system call's failure (ENOSPC, EACCES, ...) is the user's one line too, not a stack.
    const errno = e instanceof Error && (e as NodeJS.ErrnoException).syscall !== undefined;
    if (e instanceof GptError || errno) {
      process.stderr.write(`coreos update-engine disk ${cmd}: ${(e as Error).message}\n`);
      return 1;
    }
    throw e;
  }
}

// `coreos update-engine disk` against the real cgpt and sgdisk: our images read by them, theirs
// by us, cgpt prioritize compared with ours, damaged copies repaired, one-line errors.
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { copyFileSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readDisk, TYPE, USR_A_UUID, USR_B_UUID, type Table } from "../../internal/gpt/index.ts";
import { updateDisk } from "../../internal/gpt/disk.ts";
import { prioritizeTable } from "../../internal/gpt/prio.ts";
import { BIN, cleanup, tempDir } from "../helpers/procs.ts";

const OURS = [...(process.env.COREOS_CMD?.split(" ") ?? [BIN]), "update-engine", "disk"];
const dir = tempDir("coreos-disk-");
// Each test runs our binary and cgpt/sgdisk several times; on a loaded 2-core machine that adds up.
setDefaultTimeout(60_000);
afterAll(() => cleanup(dir));

interface Run {
  code: number;
  out: string;
  err: string;
}

function sh(cmd: string[]): Run {
  const r = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode ?? -1, out: r.stdout.toString(), err: r.stderr.toString() };
}

function ours(...args: string[]): Run {
  return sh([...OURS, ...args]);
}

function ok(r: Run): string {
  if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.err}`);
  return r.out;
}

let seq = 0;
function img(name = "disk"): string {
  return join(dir, `${name}-${++seq}.img`);
}

function ourImage(): string {
  const p = img("ours");
  ok(ours("init", p, "--size", "64M", "--layout", "small"));
  return p;
}

/** §4.8's cgpt-made image: the Flatcar layout scaled down, USR-A good with priority 1. */
function cgptImage(): string {
  const p = img("cgpt");
  ok(sh(["truncate", "-s", "64M", p]));
  const adds = [
    ["-i", "1", "-b", "2048", "-s", "8192", "-t", "efi", "-l", "EFI-SYSTEM"],
    ["-i", "2", "-b", "10240", "-s", "2048", "-t", TYPE.bios, "-l", "BIOS-BOOT"],
    ["-i", "3", "-b", "12288", "-s", "32768", "-t", TYPE.usr, "-u", USR_A_UUID, "-l", "USR-A"],
    ["-i", "4", "-b", "45056", "-s", "32768", "-t", TYPE.usr, "-u", USR_B_UUID, "-l", "USR-B"],
    ["-i", "6", "-b", "77824", "-s", "16384", "-t", "data", "-l", "OEM"],
    ["-i", "7", "-b", "94208", "-s", "2048", "-t", TYPE.reserved, "-l", "OEM-CONFIG"],
    ["-i", "9", "-b", "96256", "-s", "32768", "-t", TYPE.resize, "-l", "ROOT"],
    ["-i", "3", "-S", "1", "-P", "1"],
  ];
  sh(["cgpt", "create", p]);
  for (const a of adds) ok(sh(["cgpt", "add", ...a, p]));
  return p;
}

const cgptVal = (p: string, n: number, f: string) => ok(sh(["cgpt", "show", "-i", String(n), `-${f}`, p])).trim();

/** sgdisk -i N, parsed. */
function sgdiskInfo(p: string, n: number) {
  const o = ok(sh(["sgdisk", "-i", String(n), p]));
  const m = (re: RegExp) => re.exec(o)?.[1];
  return {
    type: m(/Partition GUID code: (\S+)/),
    uuid: m(/Partition unique GUID: (\S+)/),
    first: Number(m(/First sector: (\d+)/)),
    last: Number(m(/Last sector: (\d+)/)),
    attrs: BigInt(`0x${m(/Attribute flags: ([0-9a-f]+)/)}`),
    label: m(/Partition name: '(.*)'/),
  };
}

/** sgdisk -v finds nothing at all to say about the disk (no problem, no MBR or alignment caution). */
function expectSgdiskClean(p: string): void {
  const r = sh(["sgdisk", "-v", p]);
  expect(r.code).toBe(0);
  expect(r.out).toContain("No problems found.");
  expect(r.out + r.err).not.toMatch(/corrupt|caution|warning|problem:|mismatch|invalid/i);
}

/** Every partition as cgpt and sgdisk see it equals what we read. */
function expectToolsAgree(p: string, t: Table): void {
  const q = ok(sh(["cgpt", "show", "-q", p])).trim().split("\n");
  expect(q.length).toBe(t.partitions.length);
  for (const part of t.partitions) {
    const n = part.number;
    expect(cgptVal(p, n, "b")).toBe(String(part.firstLba));
    expect(cgptVal(p, n, "s")).toBe(String(part.lastLba - part.firstLba + 1));
    expect(cgptVal(p, n, "t").toUpperCase()).toBe(part.type);
    expect(cgptVal(p, n, "u").toUpperCase()).toBe(part.uuid);
    expect(cgptVal(p, n, "l")).toBe(part.label);
    expect(cgptVal(p, n, "P")).toBe(String(part.priority));
    expect(cgptVal(p, n, "T")).toBe(String(part.tries));
    expect(cgptVal(p, n, "S")).toBe(part.successful ? "1" : "0");
    const s = sgdiskInfo(p, n);
    expect(s).toEqual({ type: part.type, uuid: part.uuid, first: part.firstLba, last: part.lastLba, attrs: part.attributes, label: part.label });
  }
}

const attrsA = (p: string, n: number) => cgptVal(p, n, "A");

describe("our images read by cgpt and sgdisk", () => {
  test("disk init: the §4.1 layout, PARTUUIDs, types, labels and attributes agree", () => {
    const p = ourImage();
    const t = readDisk(p);
    expect(t.partitions.map((x) => `${x.number}:${x.label}`)).toEqual(
      ["1:EFI-SYSTEM", "2:BIOS-BOOT", "3:USR-A", "4:USR-B", "6:OEM", "7:OEM-CONFIG", "9:ROOT"],
    );
    expectToolsAgree(p, t);
    expect(cgptVal(p, 3, "u")).toBe(USR_A_UUID);
    expect(cgptVal(p, 4, "u")).toBe(USR_B_UUID);
    expect(attrsA(p, 3)).toBe("0x101");
    expect(attrsA(p, 4)).toBe("0");
    expect(ok(sh(["sgdisk", "-p", p]))).toContain("Disk identifier (GUID): 00000000-0000-0000-0000-000000000001");
    expectSgdiskClean(p);
  });

  test("disk show prints cgpt show's table (types named, USR attributes added)", () => {
    const p = ourImage();
    const theirs = ok(sh(["cgpt", "show", p])).split("\n");
    const mine = ok(ours("show", p)).split("\n");
    const strip = (lines: string[]) => lines.filter((l) => !/^\s+(Type|Attr): /.test(l));
    expect(strip(mine)).toEqual(strip(theirs));
    expect(mine).toContain(`${" ".repeat(34)}Attr: priority=1 tries=0 successful=1`);
    expect(mine).toContain(`${" ".repeat(34)}Type: Alias for coreos-rootfs`);
    expect(ok(ours("show", p, "-i", "4", "-u"))).toBe(`${USR_B_UUID}\n`);
    expect(ok(ours("show", p, "-i", "3", "-A"))).toBe("0x101\n");
    const cols = (text: string) => text.trim().split("\n").map((l) => l.trim().split(/\s+/).slice(0, 3).join(" "));
    expect(cols(ok(ours("show", p, "-q")))).toEqual(cols(ok(sh(["cgpt", "show", "-q", p]))));
  });

  test("disk init with the shipped sizes on an 8 GiB sparse image", () => {
    const p = img("flatcar");
    ok(ours("init", p, "--size", "8G"));
    const t = readDisk(p);
    expectToolsAgree(p, t);
    expect(sgdiskInfo(p, 3).last - sgdiskInfo(p, 3).first + 1).toBe(4 * 1024 * 1024);
    expectSgdiskClean(p);
  });

  test("switch, next, next, mark-good: the §4.8 attribute values, sgdisk -v clean after each write", () => {
    const p = ourImage();
    ok(ours("switch", p, "-i", "4"));
    expect([attrsA(p, 3), attrsA(p, 4)]).toEqual(["0x101", "0x12"]);
    expectSgdiskClean(p);

    expect(ok(ours("next", p))).toBe(`usr_device=${p},gpt4\nusr_uuid=${USR_B_UUID.toLowerCase()}\n`);
    expect(attrsA(p, 4)).toBe("0x2");
    expectSgdiskClean(p);
    // Not marked good: the next boot falls back to USR-A and writes nothing.
    const before = readFileSync(p);
    expect(ok(ours("next", p))).toBe(`usr_device=${p},gpt3\nusr_uuid=${USR_A_UUID.toLowerCase()}\n`);
    expect(readFileSync(p).equals(before)).toBe(true);

    // The update applied again, booted, and this time marked good: B stays.
    ok(ours("switch", p, "-i", "4"));
    ok(ours("next", p));
    const cmdline = join(dir, "cmdline");
    writeFileSync(cmdline, `BOOT_IMAGE=/flatcar/vmlinuz-b mount.usr=PARTUUID=${USR_B_UUID.toLowerCase()} root=LABEL=ROOT\n`);
    ok(ours("mark-good", p, "--cmdline", cmdline));
    expect([attrsA(p, 3), attrsA(p, 4)]).toEqual(["0x101", "0x102"]);
    expectSgdiskClean(p);
    expect(ok(ours("next", p))).toContain("gpt4");
    expect(ok(ours("next", p))).toContain("gpt4");
    expectToolsAgree(p, readDisk(p));
  });

  test("set and prioritize", () => {
    const p = ourImage();
    ok(ours("set", p, "-i", "4", "-P", "5", "-T", "3", "-S", "0"));
    expect([cgptVal(p, 4, "P"), cgptVal(p, 4, "T"), cgptVal(p, 4, "S")]).toEqual(["5", "3", "0"]);
    ok(ours("prioritize", p, "-i", "3"));
    expect([cgptVal(p, 3, "P"), cgptVal(p, 4, "P")]).toEqual(["2", "1"]);
    expect(cgptVal(p, 4, "T")).toBe("3");
    expectSgdiskClean(p);
  });
});

describe("their images read by us", () => {
  test("cgpt create/add (§4.8)", () => {
    const p = cgptImage();
    const t = readDisk(p);
    expect(t.partitions.map((x) => x.label)).toEqual(["EFI-SYSTEM", "BIOS-BOOT", "USR-A", "USR-B", "OEM", "OEM-CONFIG", "ROOT"]);
    expectToolsAgree(p, t);
    // cgpt create writes no protective MBR; our first write adds one and keeps the rest.
    ok(ours("switch", p, "-i", "4"));
    expect([attrsA(p, 3), attrsA(p, 4)]).toEqual(["0x101", "0x12"]);
    expectSgdiskClean(p);
    ok(ours("next", p));
    ok(ours("mark-good", p, "-i", "4"));
    expect([attrsA(p, 3), attrsA(p, 4)]).toEqual(["0x101", "0x102"]);
    expectToolsAgree(p, readDisk(p));
    expect(readDisk(p).diskGuid).toBe(t.diskGuid);
  });

  test("sgdisk -o/-n/-t/-c/-u/-A", () => {
    const p = img("sgdisk");
    ok(sh(["truncate", "-s", "64M", p]));
    ok(sh([
      "sgdisk", "-o",
      "-n", "3:2048:+16M", "-t", "3:5DFBF5F4-2848-4BAC-AA5E-0D9A20B745A6", "-c", "3:USR-A", "-u", `3:${USR_A_UUID}`, "-A", "3:set:48", "-A", "3:set:56",
      "-n", "4:0:+16M", "-t", "4:5DFBF5F4-2848-4BAC-AA5E-0D9A20B745A6", "-c", "4:USR-B", "-u", `4:${USR_B_UUID}`,
      "-n", "9:0:+16M", "-t", "9:8300", "-c", "9:ROOT",
      p,
    ]));
    const t = readDisk(p);
    expect(t.partitions.map((x) => [x.number, x.label, x.priority, x.successful])).toEqual([
      [3, "USR-A", 1, true],
      [4, "USR-B", 0, false],
      [9, "ROOT", 0, false],
    ]);
    expectToolsAgree(p, t);
    ok(ours("switch", p, "-i", "4"));
    expectSgdiskClean(p);
    expect(sgdiskInfo(p, 4).attrs).toBe(0x12n << 48n);
  });
});

describe("prioritize compared with the real cgpt prioritize", () => {
  // Upstream (Debian) cgpt ranks ChromeOS kernel partitions; Flatcar's ranks USR partitions with the
  // same algorithm (§4.5). So the same image is made twice, once with each type: cgpt prioritizes the
  // kernel one, our `disk prioritize` the USR one, and the priorities must come out equal.
  const scenarios: [string, number[], string[]][] = [
    ["two slots, fresh", [1, 0], ["-i", "2"]],
    ["two slots, steady state", [1, 2], ["-i", "1"]],
    ["groups and a zero", [5, 5, 3, 0], ["-i", "4"]],
    ["friends", [5, 5, 3, 0], ["-i", "2", "-f"]],
    ["max priority", [2, 1, 0], ["-i", "3", "-P", "7"]],
    ["sixteen partitions", [15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0], ["-i", "16"]],
  ];
  function image(type: string, prios: number[]): string {
    const p = img("prio");
    ok(sh(["truncate", "-s", "64M", p]));
    sh(["cgpt", "create", p]);
    prios.forEach((prio, i) => {
      const s = (1 + i) * 2048;
      ok(sh(["cgpt", "add", "-i", String(i + 1), "-b", String(s), "-s", "2048", "-t", type, "-l", `P${i + 1}`, "-P", String(prio), "-S", "1", p]));
    });
    return p;
  }
  const prios = (p: string, count: number) => Array.from({ length: count }, (_, i) => Number(cgptVal(p, i + 1, "P")));

  for (const [name, start, args] of scenarios)
    test(name, () => {
      const kernel = image(TYPE.chromeosKernel, start);
      ok(sh(["cgpt", "prioritize", ...args, kernel]));
      const usr = image(TYPE.usr, start);
      ok(ours("prioritize", usr, ...args));
      expect(prios(usr, start.length)).toEqual(prios(kernel, start.length));
      expectSgdiskClean(usr);
      // Our library with cgpt's candidate set agrees on the kernel image too.
      const again = image(TYPE.chromeosKernel, start);
      const n = Number(args[1]);
      updateDisk(again, (t) => ({
        table: prioritizeTable(t, n, {
          candidate: (x) => x.type === TYPE.chromeosKernel,
          friends: args.includes("-f"),
          maxPriority: args.includes("-P") ? Number(args[args.indexOf("-P") + 1]) : undefined,
        }),
        result: null,
      }));
      expect(prios(again, start.length)).toEqual(prios(kernel, start.length));
    });

  test("documented difference: Debian cgpt refuses a USR target, ours refuses a non-USR one", () => {
    const usr = image(TYPE.usr, [1, 0]);
    const r = sh(["cgpt", "prioritize", "-i", "2", usr]);
    expect(r.code).not.toBe(0);
    expect(r.err).toContain("is not a ChromeOS kernel");
    const kernel = image(TYPE.chromeosKernel, [1, 0]);
    const mine = ours("prioritize", kernel, "-i", "2");
    expect(mine.code).toBe(1);
    expect(mine.err).toBe("coreos update-engine disk prioritize: partition 2 is not a USR partition\n");
  });
});

describe("damage and repair", () => {
  const SECTOR = 512;
  const damage: [string, (size: number) => number][] = [
    ["primary header", () => SECTOR + 40],
    ["primary entries", () => 2 * SECTOR + 3 * 128 + 48 + 6],
    ["backup header", (size) => size - SECTOR + 40],
    ["backup entries", (size) => size - 33 * SECTOR + 2 * 128 + 4],
  ];
  for (const [what, where] of damage)
    test(what, () => {
      const p = ourImage();
      ok(ours("switch", p, "-i", "4"));
      const good = readFileSync(p);
      const before = readDisk(p);
      const size = statSync(p).size;
      const bytes = readFileSync(p);
      const at = where(size);
      bytes[at] = bytes[at]! ^ 0x5a;
      writeFileSync(p, bytes);

      expect(readDisk(p)).toEqual(before);
      const shown = ours("show", p, "-i", "4", "-A");
      expect(shown.out).toBe("0x12\n");
      expect(shown.err).toContain(`WARNING: ${what.split(" ")[0]} GPT is invalid`);
      expect(sh(["sgdisk", "-v", p]).out).toMatch(/corrupt|problem:|mismatch|invalid/i);

      expect(ok(ours("repair", p)) + ours("repair", p).err).toBe("");
      expect(readFileSync(p).equals(good)).toBe(true);
      expectSgdiskClean(p);
    });

  test("two valid copies that differ (a crash between them): the primary wins and is copied", () => {
    const p = ourImage();
    const old = readFileSync(p);
    ok(ours("switch", p, "-i", "4"));
    const now = readFileSync(p);
    const backupAt = now.length - 33 * SECTOR;
    now.set(old.subarray(backupAt), backupAt); // the backup as it was before the switch
    writeFileSync(p, now);
    expect(sh(["sgdisk", "-v", p]).out).toMatch(/problem|differ|mismatch/i);
    const shown = ours("show", p, "-i", "4", "-A");
    expect(shown.out).toBe("0x12\n");
    expect(shown.err).toContain("primary and backup GPT differ");
    expect(ours("repair", p).err).toBe("repaired: primary and backup GPT differ (the primary wins)\n");
    expectSgdiskClean(p);
    expect(cgptVal(p, 4, "A")).toBe("0x12");
  });

  test("a write on a damaged disk writes both copies", () => {
    const p = ourImage();
    const bytes = readFileSync(p);
    bytes.fill(0, SECTOR, 2 * SECTOR);
    writeFileSync(p, bytes);
    ok(ours("prioritize", p, "-i", "4"));
    expectSgdiskClean(p);
    expect(cgptVal(p, 4, "P")).toBe("2");
  });

  test("a missing protective MBR is added, boot code kept", () => {
    const p = ourImage();
    const bytes = readFileSync(p);
    bytes.fill(0x90, 0, 440);
    bytes.fill(0, 440, 512);
    writeFileSync(p, bytes);
    expect(ours("show", p).err).toContain("no protective MBR");
    expect(ours("repair", p).err).toBe("repaired: no protective MBR\n");
    const mbr = readFileSync(p).subarray(0, 512);
    expect(mbr.subarray(0, 440).every((b) => b === 0x90)).toBe(true);
    expectSgdiskClean(p);
  });

  test("both copies gone: one line, exit 1, nothing written", () => {
    const p = ourImage();
    const bytes = readFileSync(p);
    bytes.fill(0, SECTOR, 2 * SECTOR);
    bytes.fill(0, bytes.length - SECTOR);
    writeFileSync(p, bytes);
    for (const cmd of [["show", p], ["next", p], ["prioritize", p, "-i", "4"], ["repair", p]]) {
      const r = ours(...cmd);
      expect(r.code).toBe(1);
      expect(r.err.trim().split("\n")).toHaveLength(1);
      expect(r.err).toContain("no valid GPT (primary: no GPT signature; backup: no GPT signature)");
    }
    expect(readFileSync(p).equals(bytes)).toBe(true);
  });
});

describe("command line", () => {
  test("bad input is one line and a non-zero exit; the disk is left alone", () => {
    const p = ourImage();
    const before = readFileSync(p);
    const cases: [string[], number, string][] = [
      [["prioritize", p], 2, "missing -i N"],
      [["set", p, "-i", "4", "-P", "16"], 2, "must be 0-15"],
      [["set", p, "-i", "4", "-S", "2"], 2, "must be 0-1"],
      [["set", p, "-i", "4"], 2, "nothing to set"],
      [["set", p, "-i", "12", "-P", "1"], 1, "partition 12 does not exist"],
      [["switch", p, "-i", "9"], 1, "partition 9 is not a USR partition"],
      [["show", p, "-P"], 2, "-P needs -i N"],
      [["next", p, "extra"], 2, "one DISK expected"],
      [["next"], 2, "missing DISK"],
      [["prioritize", p, "-i", "x"], 2, `invalid value "x" for flag -i`],
      [["show", p, "--bogus"], 2, "flag provided but not defined: -bogus"],
      [["init", p, "--size", "64M"], 1, "already holds a valid GPT"],
      [["init", p, "--size", "32M", "--force"], 1, "more than the 33554432 asked for"],
      [["init", join(dir, "tiny.img"), "--size", "1M", "--layout", "small"], 1, "too small for the layout"],
      [["init", join(dir, "x.img"), "--size", "64Q"], 2, "want a size like 64M"],
      [["show", join(dir, "missing.img")], 1, "cannot open"],
      [["mark-good", p, "--cmdline", join(dir, "no-cmdline")], 1, "cannot read"],
      [["frobnicate", p], 2, 'unknown command "frobnicate"'],
    ];
    for (const [args, code, msg] of cases) {
      const r = ours(...args);
      expect({ args, code: r.code }).toEqual({ args, code });
      expect(r.err.trim().split("\n")).toHaveLength(1);
      expect(r.err).toContain(msg);
    }
    expect(readFileSync(p).equals(before)).toBe(true);
  });

  test("mark-good finds the running /usr on the kernel command line, or says where it is", () => {
    const p = ourImage();
    const cmdline = join(dir, "cmdline-missing");
    writeFileSync(cmdline, "mount.usr=PARTUUID=11111111-2222-3333-4444-555555555555\n");
    const r = ours("mark-good", p, "--cmdline", cmdline);
    expect(r.code).toBe(1);
    expect(r.err).toContain("the running /usr (PARTUUID=11111111-2222-3333-4444-555555555555) is not a partition of");
    writeFileSync(cmdline, "mount.usr=PARTLABEL=USR-B\n");
    ok(ours("mark-good", p, "--cmdline", cmdline));
    expect(attrsA(p, 4)).toBe("0x102");
  });

  test("init: a larger layout, 4096-byte sectors, an existing file extended", () => {
    const p = img("big");
    ok(ours("init", p, "--size", "256M", "--layout", "small", "--usr-size", "64M"));
    expect(readDisk(p).partitions.find((x) => x.number === 4)!.lastLba - readDisk(p).partitions.find((x) => x.number === 4)!.firstLba + 1).toBe(131072);
    expectSgdiskClean(p);

    const q = img("4k");
    ok(ours("init", q, "--size", "64M", "--layout", "small", "--sector-size", "4096"));
    const t = readDisk(q);
    expect(t.sectorSize).toBe(4096);
    expect(ok(ours("show", q, "-i", "3", "-b"))).toBe(`${t.partitions.find((x) => x.number === 3)!.firstLba}\n`);

    const r = img("existing");
    copyFileSync(p, r);
    writeFileSync(r, "");
    ok(ours("init", r, "--size", "64M", "--layout", "small"));
    expect(statSync(r).size).toBe(64 * 1024 * 1024);
  });
});

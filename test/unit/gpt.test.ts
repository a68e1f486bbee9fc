// internal/gpt pure parts: GUID byte order, boot attribute bits, header/entry codec and checks,
// gptprio selection (§4.3), cgpt prioritize (§4.5), switch (§4.4), mark-good (§4.6), the layout (§4.1).
import { describe, expect, test } from "bun:test";
import { decodeAttrs, encodeAttrs } from "../../internal/gpt/attrs.ts";
import {
  crc32,
  decodeEntries,
  decodeHeader,
  encodeCopies,
  encodeProtectiveMbr,
  hasProtectiveMbr,
  partition,
  tableOf,
  type Partition,
  type Table,
} from "../../internal/gpt/codec.ts";
import { decodeGuid, encodeGuid, parseType, TYPE, USR_A_UUID, USR_B_UUID } from "../../internal/gpt/guid.ts";
import { coreosLayout, LAYOUTS } from "../../internal/gpt/layout.ts";
import {
  choose,
  markGoodTable,
  nextTable,
  partitionByUuid,
  partitionRange,
  prioritizeTable,
  switchTable,
  usrPartitions,
  withAttrs,
} from "../../internal/gpt/prio.ts";
import { usrFromCmdline } from "../../internal/gpt/rootdev.ts";
import { GptError } from "../../internal/gpt/errors.ts";

const MiB = 1024 * 1024;

function small(): Table {
  return coreosLayout({ bytes: 64 * MiB, sizes: LAYOUTS.small });
}

/** A table whose USR slots (3 and 4, plus any extra numbers) carry the given P/T/S. */
function slots(spec: Record<number, [number, number, 0 | 1]>, type: string = TYPE.usr): Table {
  const parts: Partition[] = Object.entries(spec).map(([n, [priority, tries, s]], i) =>
    partition(Number(n), {
      type,
      uuid: `00000000-0000-0000-0000-${String(n).padStart(12, "0")}`,
      firstLba: 2048 + i * 2048,
      lastLba: 2048 + i * 2048 + 2047,
      attributes: encodeAttrs(0n, { priority, tries, successful: s === 1 }),
      label: `P${n}`,
    }),
  );
  return { sectorSize: 512, sectors: 131072, diskGuid: TYPE.data, firstUsable: 34, lastUsable: 131038, entryCount: 128, partitions: parts };
}

const pts = (t: Table) => Object.fromEntries(t.partitions.map((p) => [p.number, [p.priority, p.tries, p.successful ? 1 : 0]]));

describe("guid", () => {
  test("type GUIDs are stored mixed-endian (§4.2)", () => {
    const b = new Uint8Array(16);
    encodeGuid(TYPE.usr, b, 0);
    expect(Buffer.from(b).toString("hex")).toBe("f4f5fb5d4828ac4baa5e0d9a20b745a6");
    expect(decodeGuid(b, 0)).toBe(TYPE.usr);
  });
  test("aliases and GUIDs in any case", () => {
    expect(parseType("coreos-usr")).toBe(TYPE.usr);
    expect(parseType("flatcar-rootfs")).toBe(TYPE.usr);
    expect(parseType("5dfbf5f4-2848-4bac-aa5e-0d9a20b745a6")).toBe(TYPE.usr);
    expect(parseType("nonsense")).toBeUndefined();
  });
});

describe("attributes", () => {
  test("priority 48-51, tries 52-55, successful 56; other bits kept", () => {
    const legacyBoot = 1n << 2n;
    const a = encodeAttrs(legacyBoot, { priority: 2, tries: 1, successful: false });
    const bytes = new Uint8Array(8);
    new DataView(bytes.buffer).setBigUint64(0, a, true);
    // §4.8: entry of USR-B after postinst reads 00 00 00 00 00 00 12 00 (plus our legacy bit 2).
    expect([...bytes]).toEqual([4, 0, 0, 0, 0, 0, 0x12, 0]);
    expect(decodeAttrs(a)).toEqual({ priority: 2, tries: 1, successful: false });
    const good = encodeAttrs(a, { successful: true, tries: 0 });
    expect(good).toBe(legacyBoot | 0x0102n << 48n);
    expect(decodeAttrs(0x0f_ffn << 48n)).toEqual({ priority: 15, tries: 15, successful: true });
  });
  test("out of range values are refused", () => {
    expect(() => encodeAttrs(0n, { priority: 16 })).toThrow(GptError);
    expect(() => encodeAttrs(0n, { tries: -1 })).toThrow(GptError);
  });
});

describe("codec", () => {
  test("crc32 is the IEEE one GPT uses", () => {
    expect(crc32(new TextEncoder().encode("123456789"))).toBe(0xcbf43926);
  });

  test("a table survives encode and decode, both copies", () => {
    const t = small();
    const { primary, backup } = encodeCopies(t);
    for (const c of [primary, backup]) {
      const h = decodeHeader(c.header, c.headerLba, t.sectors);
      if (!h.ok) throw new Error(h.reason);
      expect(h.value.entriesLba).toBe(c.entriesLba);
      const e = decodeEntries(c.entries, h.value);
      if (!e.ok) throw new Error(e.reason);
      expect(tableOf(h.value, e.value, 512, t.sectors)).toEqual(t);
    }
    expect(backup.headerLba).toBe(t.sectors - 1);
    expect(backup.entriesLba).toBe(t.sectors - 33);
  });

  test("damaged headers and entries are told apart", () => {
    const t = small();
    const { primary } = encodeCopies(t);
    const reason = (sector: Uint8Array, lba = 1) => {
      const h = decodeHeader(sector, lba, t.sectors);
      return h.ok ? "ok" : h.reason;
    };
    expect(reason(primary.header)).toBe("ok");
    const sig = primary.header.slice();
    sig[0] = 0;
    expect(reason(sig)).toBe("no GPT signature");
    const flip = primary.header.slice();
    flip[40] = flip[40]! ^ 1;
    expect(reason(flip)).toBe("header CRC mismatch");
    expect(reason(primary.header, 5)).toContain("read from 5");
    const h = decodeHeader(primary.header, 1, t.sectors);
    if (!h.ok) throw new Error(h.reason);
    const entries = primary.entries.slice();
    entries[2 * 128 + 48 + 6] = entries[2 * 128 + 48 + 6]! ^ 0x10;
    const e = decodeEntries(entries, h.value);
    expect(e.ok ? "ok" : e.reason).toBe("entry array CRC mismatch");
  });

  test("a header on a smaller disk than it claims is refused", () => {
    const t = small();
    const { primary } = encodeCopies(t);
    const h = decodeHeader(primary.header, 1, t.sectors / 2);
    expect(h.ok).toBe(false);
  });

  test("overlapping partitions make a copy invalid", () => {
    const t = small();
    const p4 = t.partitions.find((p) => p.number === 4)!;
    const bad: Table = { ...t, partitions: t.partitions.map((p) => (p.number === 4 ? { ...p4, firstLba: p4.firstLba - 10 } : p)) };
    const { primary } = encodeCopies(bad);
    const h = decodeHeader(primary.header, 1, t.sectors);
    if (!h.ok) throw new Error(h.reason);
    const e = decodeEntries(primary.entries, h.value);
    expect(e.ok ? "ok" : e.reason).toBe("partitions 3 and 4 overlap");
  });

  test("protective MBR as sgdisk writes it, boot code kept", () => {
    const old = new Uint8Array(512).fill(0x90);
    const m = encodeProtectiveMbr(131072, 512, old);
    expect(hasProtectiveMbr(m)).toBe(true);
    expect(Buffer.from(m.subarray(446, 462)).toString("hex")).toBe("00000200ee28200801000000ffff0100");
    expect(m[0]).toBe(0x90);
    expect(hasProtectiveMbr(new Uint8Array(512))).toBe(false);
  });
});

describe("gptprio.next choice (§4.3)", () => {
  const cases: [string, Record<number, [number, number, 0 | 1]>, number | null][] = [
    ["both good: the higher priority", { 3: [1, 0, 1], 4: [2, 0, 1] }, 4],
    ["new slot with a try left beats the old good one", { 3: [1, 0, 1], 4: [2, 1, 0] }, 4],
    ["tries exhausted and not successful: fall back", { 3: [1, 0, 1], 4: [2, 0, 0] }, 3],
    ["priority tie goes to the lower number", { 3: [2, 0, 1], 4: [2, 0, 1] }, 3],
    ["priority 0 never boots", { 3: [0, 0, 1], 4: [1, 0, 1] }, 4],
    ["nothing bootable", { 3: [0, 5, 1], 4: [3, 0, 0] }, null],
    ["fresh image: only USR-A", { 3: [1, 0, 1], 4: [0, 0, 0] }, 3],
  ];
  for (const [name, spec, want] of cases)
    test(name, () => {
      expect(choose(slots(spec))?.number ?? null).toBe(want);
    });

  test("only USR-type partitions are candidates", () => {
    const t = slots({ 3: [1, 0, 1] });
    const other = partition(9, { ...t.partitions[0]!, number: 9, type: TYPE.data, uuid: TYPE.bios, firstLba: 90000, lastLba: 90100, attributes: encodeAttrs(0n, { priority: 15, successful: true }) } as Partition);
    expect(choose({ ...t, partitions: [...t.partitions, other] })?.number).toBe(3);
  });

  test("rollback path: B with tries=1 is chosen once, then A", () => {
    let t = switchTable(slots({ 3: [1, 0, 1], 4: [0, 0, 0] }), 4);
    expect(pts(t)).toEqual({ 3: [1, 0, 1], 4: [2, 1, 0] });
    const first = nextTable(t)!;
    expect(first.chosen.number).toBe(4);
    expect(first.chosen.tries).toBe(0);
    t = first.table;
    expect(pts(t)).toEqual({ 3: [1, 0, 1], 4: [2, 0, 0] });
    const second = nextTable(t)!;
    expect(second.chosen.number).toBe(3);
    expect(second.table).toBe(t); // a successful slot spends no tries: nothing to write
  });

  test("mark-good after the first boot keeps B", () => {
    const booted = nextTable(switchTable(slots({ 3: [1, 0, 1], 4: [0, 0, 0] }), 4))!.table;
    const good = markGoodTable(booted, 4);
    expect(pts(good)).toEqual({ 3: [1, 0, 1], 4: [2, 0, 1] });
    expect(nextTable(good)!.chosen.number).toBe(4);
    expect(nextTable(good)!.table).toBe(good);
  });
});

describe("prioritize (§4.5)", () => {
  const cases: [string, Record<number, [number, number, 0 | 1]>, number | null, { friends?: boolean; maxPriority?: number }, Record<number, number>][] = [
    ["two slots: target 2, other 1", { 3: [1, 0, 1], 4: [0, 0, 0] }, 4, {}, { 3: 1, 4: 2 }],
    ["steady state alternates", { 3: [1, 0, 1], 4: [2, 0, 1] }, 3, {}, { 3: 2, 4: 1 }],
    ["already on top: unchanged", { 3: [1, 0, 1], 4: [2, 0, 1] }, 4, {}, { 3: 1, 4: 2 }],
    ["priority 0 stays 0", { 3: [0, 0, 0], 4: [0, 0, 0], 5: [3, 0, 1] }, 4, {}, { 3: 0, 4: 2, 5: 1 }],
    ["groups compacted", { 3: [9, 0, 1], 4: [5, 0, 1], 5: [5, 0, 1], 6: [1, 0, 1] }, 6, {}, { 3: 2, 4: 1, 5: 1, 6: 3 }],
    ["friends move together", { 3: [9, 0, 1], 4: [5, 0, 1], 5: [5, 0, 1], 6: [1, 0, 1] }, 4, { friends: true }, { 3: 2, 4: 3, 5: 3, 6: 1 }],
    ["-P sets the top, never below 1", { 3: [9, 0, 1], 4: [5, 0, 1], 5: [1, 0, 1] }, 5, { maxPriority: 2 }, { 3: 1, 4: 1, 5: 2 }],
    ["no target: only compacts", { 3: [9, 0, 1], 4: [5, 0, 1], 5: [0, 0, 1] }, null, {}, { 3: 2, 4: 1, 5: 0 }],
  ];
  for (const [name, spec, target, o, want] of cases)
    test(name, () => {
      const got = prioritizeTable(slots(spec), target, o);
      expect(Object.fromEntries(got.partitions.map((p) => [p.number, p.priority]))).toEqual(want);
      // tries and successful are never touched
      for (const p of got.partitions) expect([p.tries, p.successful ? 1 : 0]).toEqual([spec[p.number]![1], spec[p.number]![2]]);
    });

  test("more than 15 groups: top is 15 and the tail is squeezed at 1", () => {
    const spec: Record<number, [number, number, 0 | 1]> = {};
    for (let n = 1; n <= 16; n++) spec[n] = [n === 16 ? 0 : 16 - n, 0, 1];
    const got = prioritizeTable(slots(spec), 16);
    const prio = Object.fromEntries(got.partitions.map((p) => [p.number, p.priority]));
    expect(prio[16]).toBe(15);
    expect(prio[1]).toBe(14);
    expect(prio[14]).toBe(1);
    expect(prio[15]).toBe(1);
  });

  test("a non-USR target is refused in one line", () => {
    expect(() => prioritizeTable(small(), 1)).toThrow(new GptError("partition 1 is not a USR partition"));
    expect(() => prioritizeTable(small(), 5)).toThrow(new GptError("partition 5 does not exist"));
  });

  test("the cgpt candidate set can be swapped (upstream cgpt: ChromeOS kernels)", () => {
    const t = slots({ 2: [1, 0, 1], 4: [0, 0, 0] }, TYPE.chromeosKernel);
    expect(() => prioritizeTable(t, 4)).toThrow(GptError);
    const got = prioritizeTable(t, 4, { candidate: (p) => p.type === TYPE.chromeosKernel });
    expect(pts(got)).toEqual({ 2: [1, 0, 1], 4: [2, 0, 0] });
  });
});

describe("table helpers", () => {
  test("switch and mark-good leave the other slot's tries and success alone", () => {
    const t = withAttrs(slots({ 3: [1, 0, 1], 4: [1, 0, 1] }), 3, { tries: 3 });
    expect(pts(switchTable(t, 4))).toEqual({ 3: [1, 3, 1], 4: [2, 1, 0] });
    expect(() => switchTable(small(), 9)).toThrow("partition 9 is not a USR partition");
  });
  test("lookups and the byte range of a partition", () => {
    const t = small();
    expect(usrPartitions(t).map((p) => p.label)).toEqual(["USR-A", "USR-B"]);
    expect(partitionByUuid(t, USR_B_UUID.toLowerCase())?.number).toBe(4);
    expect(partitionByUuid(t, TYPE.usr)).toBeUndefined();
    expect(partitionRange(t, 4)).toEqual({ offset: 45056 * 512, length: 16 * MiB });
  });
});

describe("layout (§4.1)", () => {
  test("the shipped sizes, 2 MiB aligned, ROOT takes the rest", () => {
    const t = coreosLayout({ bytes: 8 * 1024 * MiB, sizes: LAYOUTS.flatcar });
    const by = Object.fromEntries(t.partitions.map((p) => [p.label, p]));
    expect(t.partitions.map((p) => p.number)).toEqual([1, 2, 3, 4, 6, 7, 9]);
    expect(by["EFI-SYSTEM"]!.firstLba).toBe(4096);
    for (const p of t.partitions) expect(p.firstLba % 4096).toBe(0);
    expect(by["USR-A"]!.lastLba - by["USR-A"]!.firstLba + 1).toBe(4 * 1024 * 1024);
    expect(by["USR-A"]!.uuid).toBe(USR_A_UUID);
    expect(by["USR-B"]!.uuid).toBe(USR_B_UUID);
    expect(by["OEM-CONFIG"]!.type).toBe(TYPE.reserved);
    expect(by["ROOT"]!.type).toBe(TYPE.resize);
    expect((by["ROOT"]!.lastLba + 1) % 4096).toBe(0);
    expect(pts(t)[3]).toEqual([1, 0, 1]);
    expect(pts(t)[4]).toEqual([0, 0, 0]);
    expect(t.diskGuid).toBe("00000000-0000-0000-0000-000000000001");
  });
  test("4096-byte sectors: 4 sectors of entries", () => {
    const t = coreosLayout({ bytes: 64 * MiB, sizes: LAYOUTS.small, sectorSize: 4096 });
    expect(t.firstUsable).toBe(6);
    expect(t.partitions[0]!.firstLba).toBe(256);
  });
  test("a disk too small for the layout is refused", () => {
    expect(() => coreosLayout({ bytes: 4 * 1024 * MiB, sizes: LAYOUTS.flatcar })).toThrow("no room left for ROOT");
    expect(() => coreosLayout({ bytes: 64 * MiB, sizes: LAYOUTS.flatcar })).toThrow(GptError);
  });
});

describe("running /usr from the kernel command line", () => {
  test("mount.usr, verity.usr, PARTLABEL", () => {
    expect(usrFromCmdline("ro mount.usr=PARTUUID=7130c94a-213a-4e5a-8e26-6cce9662f132 root=LABEL=ROOT")).toEqual({ partuuid: USR_A_UUID });
    expect(usrFromCmdline(`mount.usr=/dev/mapper/usr verity.usr=PARTUUID=${USR_B_UUID} x`)).toEqual({ partuuid: USR_B_UUID });
    expect(usrFromCmdline("mount.usr=PARTLABEL=USR-B")).toEqual({ partlabel: "USR-B" });
    expect(usrFromCmdline("root=/dev/sda9 quiet")).toBeNull();
  });
});

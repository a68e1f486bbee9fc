// Finding the partition under /usr through sysfs, on a fake sysfs tree: a plain partition, a
// dm-verity device stacked on one, and a whole disk (which setgoodroot cannot use).
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { GptError } from "../../internal/gpt/errors.ts";
import { partitionDevice, runningUsr } from "../../internal/gpt/rootdev.ts";
import { blockDir, lowestDevice, partitionOf } from "../../internal/gpt/sysfs.ts";
import { cleanup, tempDir } from "../helpers/procs.ts";

const dir = tempDir("coreos-sysfs-");
afterAll(() => cleanup(dir));

/** A sysfs with disk vda (partitions vda3, vda4) and dm-0 on vda4; /dev/block/<dev of mount> -> `target`. */
function fakeSysfs(name: string, target: "vda3" | "dm-0" | "vda"): { sysfs: string; mount: string } {
  const sysfs = join(dir, name);
  const vda = join(sysfs, "devices/pci0000:00/virtio1/block/vda");
  for (const [part, n] of [["vda3", 3], ["vda4", 4]] as const) {
    mkdirSync(join(vda, part), { recursive: true });
    writeFileSync(join(vda, part, "partition"), `${n}\n`);
  }
  const dm = join(sysfs, "devices/virtual/block/dm-0");
  mkdirSync(join(dm, "slaves"), { recursive: true });
  symlinkSync(join(vda, "vda4"), join(dm, "slaves/vda4"));
  const mount = join(dir, `${name}-usr`);
  mkdirSync(mount);
  const link = blockDir(statSync(mount, { bigint: true }).dev, sysfs);
  mkdirSync(join(link, ".."), { recursive: true });
  symlinkSync(target === "dm-0" ? dm : target === "vda" ? vda : join(vda, target), link);
  return { sysfs, mount };
}

describe("sysfs", () => {
  test("/usr on a partition", () => {
    const f = fakeSysfs("plain", "vda3");
    expect(runningUsr(f.mount, f.sysfs)).toEqual({ disk: "/dev/vda", number: 3 });
  });
  test("/usr on dm-verity: the partition below it", () => {
    const f = fakeSysfs("verity", "dm-0");
    expect(lowestDevice(join(f.sysfs, "devices/virtual/block/dm-0"))).toEndWith("/block/vda/vda4");
    expect(runningUsr(f.mount, f.sysfs)).toEqual({ disk: "/dev/vda", number: 4 });
  });
  test("/usr on a whole disk, or on no block device: one line each", () => {
    const f = fakeSysfs("whole", "vda");
    expect(partitionOf(join(f.sysfs, "devices/pci0000:00/virtio1/block/vda"))).toBeNull();
    expect(() => runningUsr(f.mount, f.sysfs)).toThrow(new GptError(`${f.mount} is on /dev/vda, which is not a partition`));
    expect(() => runningUsr(f.mount, join(dir, "empty-sysfs"))).toThrow(GptError);
  });
  test("an image file is never taken for a partition device", () => {
    const img = join(dir, "x.img");
    writeFileSync(img, new Uint8Array(4096));
    expect(partitionDevice(img)).toBeNull();
    expect(partitionDevice(join(dir, "missing"))).toBeNull();
  });
  test("dev_t split as Linux does", () => {
    expect(blockDir(0x0803n, "/s")).toBe("/s/dev/block/8:3");
    // major 259 (NVMe/loop partitions), minor 300: the high bits of each
    const dev = ((259n & 0xfffn) << 8n) | (300n & 0xffn) | ((300n & ~0xffn) << 12n);
    expect(blockDir(dev, "/s")).toBe("/s/dev/block/259:300");
  });
});

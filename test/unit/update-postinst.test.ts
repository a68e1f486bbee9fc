// What the OEM post-install hook's mount of the new USR reads from: on a block device the kernel's
// partition name from sysfs (a sysfs tree of the test's own, device nodes made with mknod) or the
// naming rule when sysfs has nothing; on a disk image its partition's byte range through a loop.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { partitionPath } from "../../internal/gpt/sysfs.ts";
import { newUsrSource } from "../../internal/update/engine.ts";
import { cleanup, tempDir } from "../helpers/procs.ts";

const dir = tempDir("coreos-ue-postinst-unit-");
afterAll(() => cleanup(dir));

function node(name: string, major: number, minor: number): string {
  const p = join(dir, name);
  const r = Bun.spawnSync(["mknod", p, "b", String(major), String(minor)], { stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`mknod: ${r.stderr.toString()}`);
  return p;
}

/** /sys/dev/block/MAJ:MIN → devices/.../NAME, with NAME/NAMEpart/partition files. */
function sysDisk(sys: string, major: number, minor: number, name: string, parts: Record<string, number>): void {
  const devdir = join(sys, "devices/virtual/block", name);
  mkdirSync(join(devdir, "queue"), { recursive: true });
  for (const [part, n] of Object.entries(parts)) {
    mkdirSync(join(devdir, part), { recursive: true });
    writeFileSync(join(devdir, part, "partition"), `${n}\n`);
  }
  mkdirSync(join(sys, "dev/block"), { recursive: true });
  symlinkSync(devdir, join(sys, "dev/block", `${major}:${minor}`));
}

describe("partitionPath", () => {
  const sys = join(dir, "sys");
  sysDisk(sys, 8, 0, "sda", { sda3: 3, sda4: 4 });
  sysDisk(sys, 259, 0, "nvme0n1", { nvme0n1p3: 3, nvme0n1p4: 4 });

  test("a block device: the partition the kernel names in sysfs", () => {
    expect(partitionPath(node("by-id-disk", 8, 0), 4, sys)).toBe("/dev/sda4");
    expect(partitionPath(node("nvme-disk", 259, 0), 3, sys)).toBe("/dev/nvme0n1p3");
  });

  test("without a sysfs entry: the kernel's naming rule on the node's own name", () => {
    const empty = join(dir, "empty-sys");
    mkdirSync(empty);
    expect(partitionPath(node("sdb", 8, 16), 4, empty)).toBe(join(dir, "sdb4"));
    expect(partitionPath(node("mmcblk0", 179, 0), 4, empty)).toBe(join(dir, "mmcblk0p4"));
  });

  test("an image file is passed as itself", () => {
    const img = join(dir, "disk.img");
    writeFileSync(img, "");
    expect(partitionPath(img, 4, sys)).toBe(img);
  });
});

describe("newUsrSource", () => {
  const range = { offset: 3 * 1024 * 1024, length: 16 * 1024 * 1024 };
  test("a disk image: its partition's byte range through a loop device, read-only", () => {
    const img = join(dir, "whole.img");
    writeFileSync(img, "");
    expect(newUsrSource(img, 4, range)).toEqual({ source: img, options: `ro,loop,offset=${3 * 1024 * 1024},sizelimit=${16 * 1024 * 1024}` });
  });
  test("a block device: the partition's node, read-only", () => {
    const sys = join(dir, "sys2");
    sysDisk(sys, 8, 32, "sdc", { sdc4: 4 });
    expect(newUsrSource(node("sdc-link", 8, 32), 4, range, sys)).toEqual({ source: "/dev/sdc4", options: "ro" });
  });
});

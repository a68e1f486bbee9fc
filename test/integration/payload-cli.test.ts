// `coreos update-engine payload build | show | verify | apply FILE` as a user runs them: the
// compiled binary (or COREOS_CMD), openssl-made keys, one readable line and exit 1 on a bad payload.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BIN, cleanup, tempDir } from "../helpers/procs.ts";

const MiB = 1 << 20;
const cmd = process.env.COREOS_CMD?.split(" ") ?? [BIN];
let dir: string;
let image: Buffer;

function run(...args: string[]): { code: number; out: string; err: string } {
  const p = Bun.spawnSync([...cmd, "update-engine", "payload", ...args], { cwd: dir, env: { ...process.env, COREOS_CMD: "" } });
  return { code: p.exitCode ?? -1, out: p.stdout.toString(), err: p.stderr.toString() };
}

function openssl(...args: string[]): void {
  const p = Bun.spawnSync(["openssl", ...args], { cwd: dir });
  if (p.exitCode !== 0) throw new Error(`openssl ${args.join(" ")}: ${p.stderr.toString()}`);
}

beforeAll(() => {
  dir = tempDir("coreos-payload-cli-");
  openssl("genrsa", "-out", "key.pem", "2048");
  openssl("rsa", "-in", "key.pem", "-pubout", "-out", "key.pub.pem");
  openssl("genrsa", "-out", "other.pem", "2048");
  openssl("rsa", "-in", "other.pem", "-pubout", "-out", "other.pub.pem");
  image = Buffer.concat([randomBytes(MiB + 4096), Buffer.alloc(MiB), Buffer.from("x".repeat(MiB / 2))]);
  writeFileSync(join(dir, "usr.img"), image);
  writeFileSync(join(dir, "vmlinuz"), randomBytes(200_000));
});

afterAll(() => cleanup(dir));

test("build prints what an Omaha response needs; show and verify agree", () => {
  const b = run("build", "--image", "usr.img", "--key", "key.pem", "--kernel", "vmlinuz", "--out", "update.gz");
  expect(b.code).toBe(0);
  const file = readFileSync(join(dir, "update.gz"));
  expect(b.out).toContain(`size:              ${file.length}\n`);
  expect(b.out).toContain(`sha256 (base64):   ${createHash("sha256").update(file).digest("base64")}\n`);
  expect(b.out).toMatch(/operations:\s+4 \(2 REPLACE, 2 REPLACE_BZ\)/);

  const s = run("show", "--ops", "update.gz");
  expect(s.code).toBe(0);
  expect(s.out).toContain("magic:              CrAU");
  expect(s.out).toContain(`new partition:      ${image.length} bytes, sha256 ${createHash("sha256").update(image).digest("hex")}`);
  expect(s.out).toContain("procedure KERNEL:");
  expect(s.out).toContain("signature version 2: 256 bytes");
  expect(s.out).toMatch(/noop\s+REPLACE\s+data \d+\+264 -> hole\+1/);

  const v = run("verify", "--key", "key.pub.pem", "--size", String(file.length), "--sha256", createHash("sha256").update(file).digest("base64"), "update.gz");
  expect(v.code).toBe(0);
  expect(v.out).toContain("update.gz: OK");
  expect(v.out).toContain("signature:         verified");
});

test("verify with another key, or of a damaged file: exit 1 and one line naming the failed check", () => {
  run("build", "--image", "usr.img", "--key", "key.pem", "--out", "update.gz");
  const w = run("verify", "--key", "other.pub.pem", "update.gz");
  expect(w.code).toBe(1);
  expect(w.err.trim().split("\n").filter((l) => !/^verify: \d+%$/.test(l))).toEqual([
    "coreos update-engine payload verify: payload signature does not verify with the public key (wrong key, or the payload was altered) (error 18)",
  ]);
  const bad = readFileSync(join(dir, "update.gz"));
  bad[bad.length - 500_000]! ^= 1;
  writeFileSync(join(dir, "bad.gz"), bad);
  const d = run("verify", "--key", "key.pub.pem", "bad.gz");
  expect(d.code).toBe(1);
  expect(d.err).toMatch(/verify: operation \d+ \(payload bytes \d+-\d+\): data SHA-256 [0-9a-f]{64} does not match the manifest's [0-9a-f]{64} \(error 29\)\n$/);
  const u = run("verify", "--sha256", "not-base64", "update.gz");
  expect(u.code).toBe(2);
});

test("apply FILE onto a partition of a disk image, with the kernel written beside it", () => {
  run("build", "--image", "usr.img", "--key", "key.pem", "--kernel", "vmlinuz", "--out", "update.gz");
  const disk = join(dir, "disk.img");
  writeFileSync(disk, Buffer.alloc(8 * MiB, 0xaa));
  const a = run("apply", "update.gz", "--target", "disk.img", "--offset", String(2 * MiB), "--length", String(4 * MiB), "--key", "key.pub.pem", "--kernel-target", "vmlinuz-b");
  expect(a.err.split("\n").filter((l) => l && !/^apply: \d+%$/.test(l))).toEqual([]);
  expect(a.code).toBe(0);
  expect(a.out).toContain("partition sha256:  " + createHash("sha256").update(image).digest("hex"));
  const after = readFileSync(disk);
  expect(after.subarray(2 * MiB, 2 * MiB + image.length).equals(image)).toBe(true);
  expect(after.subarray(0, 2 * MiB).every((b) => b === 0xaa)).toBe(true);
  expect(after.subarray(6 * MiB).every((b) => b === 0xaa)).toBe(true);
  expect(readFileSync(join(dir, "vmlinuz-b")).equals(readFileSync(join(dir, "vmlinuz")))).toBe(true);

  const small = run("apply", "update.gz", "--target", "disk.img", "--offset", String(2 * MiB), "--length", String(MiB));
  expect(small.code).toBe(1);
  expect(small.err).toContain("(error 13)");
});

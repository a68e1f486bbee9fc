// kill -9 during a table write: whatever the moment, one valid table remains (the old or the new),
// ours reads it, and after our repair sgdisk -v finds nothing. The writer runs with a test knob
// that writes in 64-byte pieces with a pause between, so kills land inside a copy too.
import { afterAll, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { inspectDisk, readDisk, repairDisk, type Table } from "../../internal/gpt/index.ts";
import { prioritizeTable } from "../../internal/gpt/prio.ts";
import { BIN, cleanup, tempDir } from "../helpers/procs.ts";

const OURS = [...(process.env.COREOS_CMD?.split(" ") ?? [BIN]), "update-engine", "disk"];
const dir = tempDir("coreos-disk-crash-");
afterAll(() => cleanup(dir));
setDefaultTimeout(120_000);

const SLOW = { ...process.env, COREOS_GPT_TEST_WRITE_DELAY_MS: "1" };
const SECTOR = 512;

function prios(t: Table): Record<number, number> {
  return Object.fromEntries(t.partitions.map((p) => [p.number, p.priority]));
}

function startWrite(p: string, target: number) {
  return Bun.spawn([...OURS, "prioritize", p, "-i", String(target)], { env: SLOW, stdout: "ignore", stderr: "pipe" });
}

function sgdiskClean(p: string): boolean {
  const r = Bun.spawnSync(["sgdisk", "-v", p], { stdout: "pipe", stderr: "pipe" });
  const out = r.stdout.toString() + r.stderr.toString();
  return r.exitCode === 0 && out.includes("No problems found.") && !/corrupt|caution|warning|problem:|mismatch|invalid/i.test(out);
}

/** Zeroes one header sector before the write, so the write must start with that copy. */
function damage(p: string, which: "none" | "primary" | "backup"): void {
  if (which === "none") return;
  const b = readFileSync(p);
  const at = which === "primary" ? SECTOR : b.length - SECTOR;
  b.fill(0, at, at + SECTOR);
  writeFileSync(p, b);
}

test("kill -9 at spread points of a table write always leaves a valid table", async () => {
  const p = join(dir, "crash.img");
  const init = Bun.spawnSync([...OURS, "init", p, "--size", "64M", "--layout", "small"], { stderr: "pipe" });
  expect(init.exitCode).toBe(0);

  // One uninterrupted slow write: it completes correctly, and its duration spreads the kill points.
  const t0 = performance.now();
  const full = startWrite(p, 4);
  expect(await full.exited).toBe(0);
  const duration = performance.now() - t0;
  expect(prios(readDisk(p))).toMatchObject({ 3: 1, 4: 2 });
  expect(sgdiskClean(p)).toBe(true);

  const KILLS_PER_MODE = 5;
  const outcomes = { old: 0, new: 0, torn: 0 };
  for (const mode of ["none", "primary", "backup"] as const) {
    for (let j = 0; j < KILLS_PER_MODE; j++) {
      const before = readDisk(p);
      const target = before.partitions.find((x) => x.number === 3)!.priority === 2 ? 4 : 3;
      const after = prioritizeTable(before, target);
      damage(p, mode);

      const proc = startWrite(p, target);
      await Bun.sleep(((j + 0.5) / KILLS_PER_MODE) * duration);
      proc.kill("SIGKILL");
      const code = await proc.exited;

      const state = inspectDisk(p); // throws if no valid copy is left
      const got = prios(state.table);
      const label = { mode, j, code, got, problems: state.problems };
      expect({ ...label, ok: [prios(before), prios(after)].some((w) => JSON.stringify(w) === JSON.stringify(got)) }).toEqual({ ...label, ok: true });
      if (JSON.stringify(got) === JSON.stringify(prios(after))) outcomes.new++;
      else outcomes.old++;
      const damagedBefore = mode !== "none";
      if (mode === "none" && state.problems.length > 0) outcomes.torn++;

      // Whatever survived, our repair makes it whole without changing it, and sgdisk agrees.
      if (!sgdiskClean(p) || state.problems.length > 0 || damagedBefore) repairDisk(p);
      expect(prios(readDisk(p))).toEqual(got);
      expect(sgdiskClean(p)).toBe(true);
      expect(inspectDisk(p).problems).toEqual([]);
    }
  }
  // The spread did what it is for: some kills came before the write finished, some after, and
  // at least one landed between or inside the copies of an undamaged disk.
  expect(outcomes.old).toBeGreaterThan(0);
  expect(outcomes.new).toBeGreaterThan(0);
  expect(outcomes.torn).toBeGreaterThan(0);
});

test("a table writer holds the disk's flock until it is done, so a second writer waits for it", async () => {
  const p = join(dir, "lock.img");
  expect(Bun.spawnSync([...OURS, "init", p, "--size", "64M", "--layout", "small"]).exitCode).toBe(0);
  const writer = startWrite(p, 4);
  // flock(1) -n fails with exit 1 while our writer holds the lock; bounded wait for the writer to take it
  let held = false;
  for (let i = 0; i < 200 && !held && writer.exitCode === null; i++) {
    held = Bun.spawnSync(["flock", "-n", p, "true"]).exitCode === 1;
  }
  expect(held).toBe(true);
  // a second writer started meanwhile blocks, then applies its change on top of the first one's
  const second = Bun.spawn([...OURS, "set", p, "-i", "3", "-T", "7"], { stderr: "pipe" });
  expect(await writer.exited).toBe(0);
  expect(await second.exited).toBe(0);
  const t = readDisk(p);
  expect(prios(t)).toMatchObject({ 3: 1, 4: 2 });
  expect(t.partitions.find((x) => x.number === 3)!.tries).toBe(7);
  expect(Bun.spawnSync(["flock", "-n", p, "true"]).exitCode).toBe(0);
});

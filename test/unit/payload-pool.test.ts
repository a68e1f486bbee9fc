// The apply workers' job queue: every job answers exactly once, whichever worker runs it, and a
// worker that dies does not leave the applier waiting forever.
import { describe, expect, test } from "bun:test";
import * as ffi from "bun:ffi";
import { createHash } from "node:crypto";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { executeOp, type OpJob, type OpOutcome } from "../../internal/payload/exec.ts";
import { bzip2, bzip2Library } from "../../internal/payload/bzip2.ts";
import { inlineOpEnv, OpRunner } from "../../internal/payload/pool.ts";
import { writebackLibrary } from "../../internal/payload/writeback.ts";

const MiB = 1 << 20;

/** A check-only REPLACE job (no file): the worker hashes the blob against `sha256`. */
function job(index: number, fill: number, sha256?: Uint8Array): OpJob {
  const blob = new Uint8Array(MiB).fill(fill);
  return {
    index,
    type: 0,
    blob,
    sha256: sha256 ?? createHash("sha256").update(blob).digest(),
    start: index * MiB,
    fd: -1,
    destName: "partition",
    destOffset: 0,
    destLength: -1,
    blockSize: 4096,
    extents: [[index * 256, 256]],
  };
}

describe("OpRunner", () => {
  test("40 jobs on 2 workers: each answers once, only the bad one fails; blobs move (not copied) and come back as spares", async () => {
    const outcomes: OpOutcome[] = [];
    const r = new OpRunner(2, (o) => outcomes.push(o));
    try {
      const sent: Uint8Array[] = [];
      for (let i = 0; i < 40; i++) {
        const j = job(i, i, i === 17 ? new Uint8Array(32) : undefined);
        sent.push(j.blob);
        r.run(j);
        await r.ready();
      }
      await r.idle();
      expect(outcomes.map((o) => o.index).sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i));
      const failed = outcomes.filter((o) => o.error);
      expect(failed.map((o) => [o.index, o.error!.check])).toEqual([[17, "operation-hash"]]);
      expect(sent.every((b) => b.byteLength === 0)).toBe(true); // transferred, not cloned
      const spare = r.spare(MiB);
      expect(spare?.length).toBe(MiB);
      expect(r.spare(2 * MiB)).toBeUndefined();
    } finally {
      r.close();
    }
  });

  test("REPLACE_BZ and REPLACE jobs mixed on two workers: all answer, a corrupt bzip2 blob fails alone", async () => {
    const outcomes: OpOutcome[] = [];
    const r = new OpRunner(2, (o) => outcomes.push(o));
    try {
      const text = new TextEncoder().encode("usr/lib64/systemd 0644 root\n".repeat(MiB / 28));
      const packed = bzip2(text);
      for (let i = 0; i < 24; i++) {
        if (i % 3 === 2) {
          r.run(job(i, i));
          continue;
        }
        const blob = i === 7 ? packed.slice(0, packed.length - 9) : packed.slice();
        r.run({ ...job(i, 0), type: 1, blob, sha256: createHash("sha256").update(blob).digest() });
      }
      await r.idle();
      expect(outcomes.map((o) => o.index).sort((a, b) => a - b)).toEqual(Array.from({ length: 24 }, (_, i) => i));
      expect(outcomes.filter((o) => o.error).map((o) => [o.index, o.error!.check])).toEqual([[7, "operation"]]);
    } finally {
      r.close();
    }
  });

  test("a worker that dies: its jobs and the queued ones fail, and idle() still resolves", async () => {
    const outcomes: OpOutcome[] = [];
    const r = new OpRunner(1, (o) => outcomes.push(o));
    try {
      // extents missing: executeOp throws outside its own error handling, killing the worker
      r.run({ ...job(0, 1), extents: undefined as unknown as [number, number][] });
      for (let i = 1; i <= 5; i++) r.run(job(i, i));
      await r.idle();
      // the crash is reported once for the jobs the worker held (0 and 1), then each queued job fails
      expect(outcomes.map((o) => o.index)).toEqual([-1, 2, 3, 4, 5]);
      expect(outcomes.every((o) => o.error?.check === "operation")).toBe(true);
      expect(outcomes[0]!.error!.message).toMatch(/^apply worker failed: TypeError: [^\n]*extents/);
    } finally {
      r.close();
    }
  });
});

describe("writebackLibrary", () => {
  test("queues write-back of written bytes and ignores what it cannot: a bad descriptor, a character device, an empty range", () => {
    const start = writebackLibrary(ffi);
    const dir = mkdtempSync(join(tmpdir(), "coreos-writeback-"));
    try {
      const path = join(dir, "f");
      const fd = openSync(path, "w+");
      const data = new Uint8Array(3 * MiB).fill(7);
      writeSync(fd, data, 0, data.length, 0);
      start(fd, 0, data.length);
      start(fd, MiB, 0);
      closeSync(fd);
      expect(readFileSync(path)).toEqual(Buffer.from(data));
      start(-1, 0, 4096);
      const [r, w] = [openSync("/dev/null", "r"), openSync("/dev/null", "w")];
      start(r, 0, 4096);
      start(w, 0, 4096);
      closeSync(r);
      closeSync(w);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("executeOp's decoded-blob reuse", () => {
  const zeros = bzip2(new Uint8Array(MiB));
  const text = bzip2(new TextEncoder().encode("usr/lib/systemd ".repeat(MiB / 16)));
  const bzJob = (index: number, blob: Uint8Array, withHash = true): OpJob => ({
    ...job(index, 0),
    type: 1,
    blob: blob.slice(),
    sha256: withHash ? createHash("sha256").update(blob).digest() : undefined,
  });

  test("a blob seen before (same verified hash) is not decoded again; another is; one without a hash never counts as seen", () => {
    const real = bzip2Library(ffi);
    let decodes = 0;
    const env = {
      ...inlineOpEnv(),
      bz: { ...real, decompress: (i: Uint8Array, n: number, into: Uint8Array) => (decodes++, real.decompress(i, n, into)) },
    };
    expect(executeOp(bzJob(0, zeros), env).error).toBeUndefined();
    expect(executeOp(bzJob(1, zeros), env).error).toBeUndefined();
    expect(decodes).toBe(1);
    expect(executeOp(bzJob(2, text), env).error).toBeUndefined();
    expect(executeOp(bzJob(3, zeros), env).error).toBeUndefined();
    expect(decodes).toBe(2);
    expect(executeOp(bzJob(4, zeros, false), env).error).toBeUndefined();
    expect(decodes).toBe(3);
  });

  test("a blob that fails its hash is refused before any reuse", () => {
    const env = inlineOpEnv();
    expect(executeOp(bzJob(0, zeros), env).error).toBeUndefined();
    const bad = { ...bzJob(1, zeros), sha256: createHash("sha256").update(text).digest() };
    expect(executeOp(bad, env).error?.check).toBe("operation-hash");
  });

  test("the reused output is what was written: a file gets the same bytes either way", () => {
    const dir = mkdtempSync(join(tmpdir(), "coreos-reuse-"));
    try {
      const fd = openSync(join(dir, "part"), "w+");
      const env = inlineOpEnv();
      const at = (index: number, blob: Uint8Array): OpJob => ({ ...bzJob(index, blob), fd, extents: [[index * 256, 256]] });
      for (const [i, b] of [zeros, text, zeros, text].entries()) expect(executeOp(at(i, b), env).error).toBeUndefined();
      closeSync(fd);
      const got = readFileSync(join(dir, "part"));
      const plainText = new TextEncoder().encode("usr/lib/systemd ".repeat(MiB / 16));
      expect(got.subarray(2 * MiB, 3 * MiB).every((x) => x === 0)).toBe(true);
      expect(Buffer.compare(got.subarray(3 * MiB, 4 * MiB), Buffer.from(plainText))).toBe(0);
      expect(Buffer.compare(got.subarray(MiB, 2 * MiB), Buffer.from(plainText))).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// Worker threads that run operations (exec.ts) so bunzip2, the per-operation SHA-256 and the
// writes overlap with the download on the main thread. The workers are made from source text
// (a Blob URL) rather than a file: the compiled single binary has no worker file to load, and
// both functions shipped are self-contained.
import * as ffi from "bun:ffi";
import { createHash } from "node:crypto";
import { writeSync } from "node:fs";
import { availableParallelism } from "node:os";
import { bzip2Library } from "./bzip2.ts";
import { executeOp, type OpEnv, type OpJob, type OpOutcome } from "./exec.ts";
import { writebackLibrary } from "./writeback.ts";

interface OpEnvDeps {
  f: typeof ffi;
  createHash: typeof createHash;
  writeSync: typeof writeSync;
  bzip2Library: typeof bzip2Library;
  writebackLibrary: typeof writebackLibrary;
}

/** A thread's environment for executeOp. Self-contained (uses only its parameter): the workers get its source text. */
function makeOpEnv(d: OpEnvDeps): OpEnv {
  return {
    sha256: (b) => d.createHash("sha256").update(b).digest(),
    bz: d.bzip2Library(d.f),
    writeSync: d.writeSync,
    writeback: d.writebackLibrary(d.f),
    scratch: { buf: new Uint8Array(0) },
    decoded: [],
    zeros: new Uint8Array(1 << 20),
  };
}

/** The environment of operations run on the calling thread. */
export function inlineOpEnv(): OpEnv {
  return makeOpEnv({ f: ffi, createHash, writeSync, bzip2Library, writebackLibrary });
}

const WORKER_SOURCE = `
import * as ffi from "bun:ffi";
import { createHash } from "node:crypto";
import { writeSync } from "node:fs";
const executeOp = ${executeOp.toString()};
const env = (${makeOpEnv.toString()})({ f: ffi, createHash, writeSync, bzip2Library: ${bzip2Library.toString()}, writebackLibrary: ${writebackLibrary.toString()} });
// the blob's buffer goes back (moved, not copied) to be the main thread's next receive buffer
self.onmessage = (e) => {
  const out = executeOp(e.data, env);
  const buffer = e.data.blob.buffer;
  postMessage({ ...out, buffer }, [buffer]);
};
`;

let workerUrl: string | undefined;

/** Threads used by default: one per core (the main thread mostly waits on the network and hashes). */
export const DEFAULT_THREADS = Math.max(1, Math.min(4, availableParallelism()));

/** Jobs a worker holds at once: the next one is there when it finishes, without a round trip. */
const PER_WORKER = 2;
/**
 * Blob bytes waiting or in work before the download is held back. bunzip2 of a text chunk takes
 * a hundred times longer than a REPLACE of random data, so a deep queue lets the download (and
 * the other worker) run on past such a chunk instead of stalling behind it.
 */
const BUDGET_BYTES = 16 << 20;
/** Jobs waiting or in work before the download is held back (zero chunks are tiny blobs). */
const BUDGET_JOBS = 256;
/** Returned blob buffers kept for reuse as receive buffers (a fresh 1 MiB array costs page faults). */
const SPARES = 4;

/** An outcome as the workers send it: with the job's blob buffer handed back. */
type Returned = OpOutcome & { buffer?: ArrayBuffer };

export class OpRunner {
  private readonly workers: Worker[] = [];
  /** Jobs each worker holds. */
  private readonly held: number[] = [];
  private readonly queue: OpJob[] = [];
  private readonly spares: ArrayBuffer[] = [];
  private inline?: OpEnv;
  private pending = 0;
  /** Blob bytes of the jobs in flight, and each one's share by operation index. */
  private pendingBytes = 0;
  private readonly sizes = new Map<number, number>();
  private waiters: (() => void)[] = [];

  constructor(
    threads: number,
    private readonly onDone: (o: OpOutcome) => void,
  ) {
    if (threads <= 0) return;
    workerUrl ??= URL.createObjectURL(new Blob([WORKER_SOURCE], { type: "application/javascript" }));
    for (let i = 0; i < threads; i++) {
      const w = new Worker(workerUrl);
      w.onmessage = (e: MessageEvent<Returned>) => {
        this.held[i]!--;
        const { buffer, ...out } = e.data;
        if (buffer) this.recycle(buffer);
        // the next job first: finishing may read back and hash several operations' blocks
        this.pump();
        this.finished(out as OpOutcome);
      };
      w.onerror = (e) => {
        // it is gone with the jobs it held: they count as failed, and it gets no more
        const lost = this.held[i]!;
        this.held[i] = Infinity;
        this.pending -= Math.max(0, lost - 1);
        // one line: the event's message carries a source excerpt
        const lines = e.message.split("\n");
        const why = (lines.find((l) => /^\s*\w*Error\b/.test(l)) ?? lines[0]!).trim();
        this.finished({ index: -1, error: { check: "operation", message: `apply worker failed: ${why}` } });
        this.pump();
      };
      this.workers.push(w);
      this.held.push(0);
    }
  }

  run(job: OpJob): void {
    this.pending++;
    this.pendingBytes += job.blob.length;
    this.sizes.set(job.index, job.blob.length);
    if (this.workers.length === 0) {
      this.inline ??= inlineOpEnv();
      const out = executeOp(job, this.inline);
      this.recycle(job.blob.buffer as ArrayBuffer);
      queueMicrotask(() => this.finished(out));
      return;
    }
    this.queue.push(job);
    this.pump();
  }

  /** The live worker holding fewest jobs; undefined when none has room. */
  private freest(): number | undefined {
    let best: number | undefined;
    for (let i = 0; i < this.workers.length; i++) {
      if (this.held[i]! < PER_WORKER && (best === undefined || this.held[i]! < this.held[best]!)) best = i;
    }
    return best;
  }

  /**
   * Hands queued jobs, in order, to whichever worker holds fewest, up to PER_WORKER each. The
   * bunzip2s run on every worker at once: libbz2's inverse BWT is the longest part of an apply,
   * and two of them in parallel each ran at nearly the speed of one alone here (the 3.6 MB
   * tables do not evict each other from this machine's caches).
   */
  private pump(): void {
    while (this.queue.length > 0) {
      if (this.held.every((h) => h === Infinity)) {
        // every worker failed: what is queued will never run
        for (const job of this.queue.splice(0)) this.finished({ index: job.index, error: { check: "operation", message: "no apply worker left" } });
        return;
      }
      const to = this.freest();
      if (to === undefined) return;
      const job = this.queue.shift()!;
      this.held[to]!++;
      this.workers[to]!.postMessage(job, [job.blob.buffer as ArrayBuffer]);
    }
  }

  /** A receive buffer of at least `n` bytes from the returned ones, if one is there. */
  spare(n: number): Uint8Array | undefined {
    const i = this.spares.findIndex((b) => b.byteLength >= n);
    return i < 0 ? undefined : new Uint8Array(this.spares.splice(i, 1)[0]!);
  }

  private recycle(buffer: ArrayBuffer): void {
    if (buffer.byteLength > 0 && this.spares.length < SPARES) this.spares.push(buffer);
  }

  private finished(o: OpOutcome): void {
    this.pending = Math.max(0, this.pending - 1);
    this.pendingBytes -= this.sizes.get(o.index) ?? 0;
    this.sizes.delete(o.index);
    if (this.pending === 0) {
      this.pendingBytes = 0; // a worker's crash loses its jobs' outcomes: nothing is in flight now
      this.sizes.clear();
    }
    this.onDone(o);
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Resolves when no job is in flight (whether they succeeded or not). */
  async idle(): Promise<void> {
    while (this.pending > 0) await new Promise<void>((r) => this.waiters.push(r));
  }

  /** Backpressure: resolves once the jobs in flight are fewer and hold less than the budgets. */
  async ready(): Promise<void> {
    while (this.pending > 0 && (this.pendingBytes >= BUDGET_BYTES || this.pending >= BUDGET_JOBS)) {
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  close(): void {
    for (const w of this.workers) w.terminate();
    this.workers.length = 0;
  }
}

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

const WORKER_SOURCE = `
import * as ffi from "bun:ffi";
import { createHash } from "node:crypto";
import { writeSync } from "node:fs";
const bzip2Library = ${bzip2Library.toString()};
const executeOp = ${executeOp.toString()};
const env = {
  sha256: (b) => createHash("sha256").update(b).digest(),
  bz: bzip2Library(ffi),
  writeSync,
  scratch: { buf: new Uint8Array(0) },
  zeros: new Uint8Array(1 << 20),
};
self.onmessage = (e) => postMessage(executeOp(e.data, env));
`;

let workerUrl: string | undefined;

/** Threads used by default: one per core (the main thread mostly waits on the network and hashes). */
export const DEFAULT_THREADS = Math.max(1, Math.min(4, availableParallelism()));

/** Jobs queued per worker: enough to keep it busy while the next blob arrives, little memory. */
const QUEUE_PER_WORKER = 2;

export class OpRunner {
  private readonly workers: Worker[] = [];
  private readonly queued: number[] = [];
  private inline?: OpEnv;
  private pending = 0;
  private waiters: (() => void)[] = [];
  readonly capacity: number;

  constructor(
    threads: number,
    private readonly onDone: (o: OpOutcome) => void,
  ) {
    if (threads > 0) {
      workerUrl ??= URL.createObjectURL(new Blob([WORKER_SOURCE], { type: "application/javascript" }));
      for (let i = 0; i < threads; i++) {
        const w = new Worker(workerUrl);
        w.onmessage = (e: MessageEvent<OpOutcome>) => {
          this.queued[i]!--;
          this.finished(e.data);
        };
        w.onerror = (e) => {
          // its queued jobs will never answer: count them all as failed
          const lost = this.queued[i]!;
          this.queued[i] = 0;
          this.pending -= Math.max(0, lost - 1);
          this.finished({ index: -1, error: { check: "operation", message: `apply worker failed: ${e.message}` } });
        };
        this.workers.push(w);
        this.queued.push(0);
      }
    }
    this.capacity = Math.max(1, this.workers.length) * QUEUE_PER_WORKER;
  }

  get inFlight(): number {
    return this.pending;
  }

  run(job: OpJob): void {
    this.pending++;
    if (this.workers.length === 0) {
      this.inline ??= {
        sha256: (b) => createHash("sha256").update(b).digest(),
        bz: bzip2Library(ffi),
        writeSync,
        scratch: { buf: new Uint8Array(0) },
        zeros: new Uint8Array(1 << 20),
      };
      const out = executeOp(job, this.inline);
      queueMicrotask(() => this.finished(out));
      return;
    }
    let best = 0;
    for (let i = 1; i < this.workers.length; i++) if (this.queued[i]! < this.queued[best]!) best = i;
    this.queued[best]!++;
    this.workers[best]!.postMessage(job, [job.blob.buffer as ArrayBuffer]);
  }

  private finished(o: OpOutcome): void {
    this.pending = Math.max(0, this.pending - 1);
    this.onDone(o);
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Resolves once fewer than `limit` jobs are in flight. */
  async below(limit: number): Promise<void> {
    while (this.pending >= limit && this.pending > 0) await new Promise<void>((r) => this.waiters.push(r));
  }

  close(): void {
    for (const w of this.workers) w.terminate();
    this.workers.length = 0;
  }
}

// Runs many seeds on every core (Bun workers pulling small batches) and sums up the results.
import { availableParallelism } from "node:os";
import type { SimOptions, SimResult } from "./simulator.ts";

export interface SeedRun {
  start: number;
  count: number;
  options: Omit<SimOptions, "seed" | "onTrace">;
  /** Stop handing out seeds once one fails (for tests that only need a counterexample). */
  stopOnFailure?: boolean;
  workers?: number;
}

export interface Summary {
  failures: SimResult[];
  seeds: number;
  ops: number;
  elections: number;
  crashes: number;
  snapshotsSent: number;
  confChanges: number;
  inconclusive: number;
}

export type WorkerRequest = { seeds: number[]; options: SeedRun["options"] };
export type WorkerReply = { results: SimResult[] };

const BATCH = 8;

export async function runSeeds(run: SeedRun): Promise<Summary> {
  const summary: Summary = { failures: [], seeds: 0, ops: 0, elections: 0, crashes: 0, snapshotsSent: 0, confChanges: 0, inconclusive: 0 };
  let next = run.start;
  const end = run.start + run.count;
  const n = Math.max(1, Math.min(run.workers ?? availableParallelism(), Math.ceil(run.count / BATCH)));
  const batch = (): number[] => {
    if (run.stopOnFailure && summary.failures.length > 0) return [];
    const seeds: number[] = [];
    while (seeds.length < BATCH && next < end) seeds.push(next++);
    return seeds;
  };
  await Promise.all(
    Array.from({ length: n }, () => {
      const worker = new Worker(new URL("./worker.ts", import.meta.url).href);
      return new Promise<void>((resolve, reject) => {
        const feed = () => {
          const seeds = batch();
          if (seeds.length === 0) {
            worker.terminate();
            resolve();
            return;
          }
          worker.postMessage({ seeds, options: run.options } satisfies WorkerRequest);
        };
        worker.onmessage = (ev: MessageEvent<WorkerReply>) => {
          for (const r of ev.data.results) {
            summary.seeds++;
            summary.ops += r.stats.ops;
            summary.elections += r.stats.elections;
            summary.crashes += r.stats.crashes;
            summary.snapshotsSent += r.stats.snapshotsSent;
            summary.confChanges += r.stats.confChanges;
            summary.inconclusive += r.stats.inconclusiveKeys;
            if (!r.ok) summary.failures.push(r);
          }
          feed();
        };
        worker.onerror = (e) => {
          worker.terminate();
          reject(new Error(`simulation worker failed: ${e.message}`));
        };
        feed();
      });
    }),
  );
  summary.failures.sort((a, b) => a.seed - b.seed);
  return summary;
}

export function formatFailure(r: SimResult): string {
  return [`FAIL seed ${r.seed}: ${r.failure}`, "  last events:", ...r.trace.slice(-40).map((l) => `    ${l}`), `  reproduce: ${r.reproduce}`].join("\n");
}

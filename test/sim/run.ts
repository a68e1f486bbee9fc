// `npm run sim`: SEED=n replays one seed with its full trace; otherwise SIM_SEEDS seeds (default
// 2000) from SIM_START (default 1) run on every core, and each failure is printed with its seed.
// SIM_STEPS overrides the faulty phase length, SIM_NODES the cluster size, and SIM_BUG
// (commitPreviousTerm, skipSync or staleReads) injects a known bug to watch the checks catch it.
import { runSimulation, type SimOptions } from "./simulator.ts";
import { runSeeds, formatFailure } from "./parallel.ts";

const env = process.env;
const steps = env.SIM_STEPS ? Number(env.SIM_STEPS) : undefined;
const nodes = env.SIM_NODES ? Number(env.SIM_NODES) : undefined;
const bug = env.SIM_BUG;
if (bug !== undefined && bug !== "commitPreviousTerm" && bug !== "skipSync" && bug !== "staleReads") throw new Error(`unknown SIM_BUG ${bug}`);
const base: Omit<SimOptions, "seed"> = {
  ...(steps !== undefined ? { steps } : {}),
  ...(nodes !== undefined ? { nodes } : {}),
  ...(bug !== undefined ? { bugs: { [bug]: true } } : {}),
};

if (env.SEED !== undefined) {
  const seed = Number(env.SEED);
  const r = runSimulation({ ...base, seed, onTrace: (l) => console.log(l) });
  console.log(JSON.stringify(r.stats));
  if (!r.ok) {
    console.log(formatFailure(r));
    process.exit(1);
  }
  console.log(`seed ${seed}: ok`);
} else {
  const count = Number(env.SIM_SEEDS ?? 2000);
  const start = Number(env.SIM_START ?? 1);
  const t0 = performance.now();
  const summary = await runSeeds({ start, count, options: base });
  const secs = ((performance.now() - t0) / 1000).toFixed(1);
  for (const f of summary.failures) console.log(formatFailure(f));
  console.log(
    `${count} seeds (${start}..${start + count - 1}) in ${secs}s: ${summary.failures.length} failed; ` +
      `${summary.ops} client ops, ${summary.elections} elections, ${summary.crashes} crashes, ` +
      `${summary.snapshotsSent} snapshots sent, ${summary.confChanges} conf changes, ${summary.inconclusive} inconclusive keys`,
  );
  if (summary.failures.length > 0) {
    console.log(`reproduce with: ${summary.failures[0]!.reproduce}`);
    process.exit(1);
  }
}

// The deterministic simulation in `npm test`: thousands of seeds of a faulty cluster must keep
// every Raft safety invariant and a linearizable client history, and the checks must catch bugs
// planted on purpose. A failure names its seed: `SEED=n npm run sim` replays it with a full trace.
import { describe, expect, test } from "bun:test";
import { formatFailure, runSeeds } from "../sim/parallel.ts";
import { type Bugs, runSimulation } from "../sim/simulator.ts";

const SEEDS = Number(process.env.SIM_TEST_SEEDS ?? 6000);

describe("simulation", () => {
  test(
    `${SEEDS} seeds: election safety, log matching, leader completeness, state machine safety, linearizable clients`,
    async () => {
      const summary = await runSeeds({ start: 1, count: SEEDS, options: {} });
      const report = summary.failures.slice(0, 3).map(formatFailure).join("\n\n");
      expect(report).toBe("");
      expect(summary.seeds).toBe(SEEDS);
      // The faults and features really happen (a quiet simulation proves nothing).
      expect(summary.ops).toBeGreaterThan(SEEDS * 100);
      expect(summary.crashes).toBeGreaterThan(SEEDS);
      expect(summary.snapshotsSent).toBeGreaterThan(SEEDS);
      expect(summary.confChanges).toBeGreaterThan(SEEDS);
    },
    600_000,
  );

  test("a seed replays exactly", () => {
    const a = runSimulation({ seed: 42 });
    const b = runSimulation({ seed: 42 });
    expect(b.trace).toEqual(a.trace);
    expect(b.stats).toEqual(a.stats);
    expect(a.ok).toBe(true);
  });

  const planted: [keyof Bugs, RegExp][] = [
    // Acks and votes that a crash can take back: committed entries vanish, votes are cast twice.
    ["skipSync", /leader completeness|election safety|state machine safety|log matching|exception|linearizability/],
    // Figure 8 of the Raft paper: committing an earlier term's entry by counting replicas.
    ["commitPreviousTerm", /commit rule|leader completeness|state machine safety/],
    // A read served from local state without ReadIndex: the linearizability checker must object.
    ["staleReads", /linearizability/],
  ];
  for (const [bug, expected] of planted) {
    test(`catches a planted bug: ${bug}`, async () => {
      const summary = await runSeeds({ start: 1, count: 400, options: { bugs: { [bug]: true } }, stopOnFailure: true });
      expect(summary.failures.length).toBeGreaterThan(0);
      expect(summary.failures[0]!.failure).toMatch(expected);
    }, 120_000);
  }
});

// What the etcd-vs-ours benchmarks share around their measurements: which scenarios and sides to
// run (BENCH_SCENARIOS, BENCH_ONLY), progress lines, and the result tables with their ratios.
import type { Side } from "./kv-procs.ts";

/** BENCH_SCENARIOS (comma list) picks from `all`; unset: all of them. */
export function pickScenarios<S extends { name: string }>(all: S[]): S[] {
  const v = process.env.BENCH_SCENARIOS;
  if (!v || !v.trim()) return all;
  const names = v.split(",").map((s) => s.trim()).filter(Boolean);
  const unknown = names.filter((n) => !all.some((s) => s.name === n));
  if (unknown.length) throw new Error(`unknown BENCH_SCENARIOS ${unknown.join(",")}; known: ${all.map((s) => s.name).join(",")}`);
  return all.filter((s) => names.includes(s.name));
}

/** BENCH_ONLY=etcd|ours runs one side; unset: both. */
export function pickSides(): Side[] {
  const v = (process.env.BENCH_ONLY ?? "").trim();
  if (!v) return ["etcd", "ours"];
  if (v !== "etcd" && v !== "ours") throw new Error(`BENCH_ONLY must be etcd or ours, got ${v}`);
  return [v];
}

/** A progress logger: `[<name> <seconds since start>s] message`. */
export function progressLog(name: string): (s: string) => void {
  const t0 = performance.now();
  return (s) => {
    const t = ((performance.now() - t0) / 1000).toFixed(0).padStart(4);
    console.log(`[${name} ${t}s] ${s}`);
  };
}

/** Columns padded to their widest cell: the first left-aligned, the rest right-aligned. */
export function table(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join("  ");
  return [line(head), w.map((n) => "-".repeat(n)).join("  "), ...rows.map(line)].join("\n");
}

/** ours/etcd to two places, with " !" when it misses the target (>= 1 or <= 1). */
export function ratio(ours: number | undefined, etcd: number | undefined, wantAtLeast: boolean): string {
  if (ours === undefined || etcd === undefined || !Number.isFinite(ours) || !Number.isFinite(etcd) || etcd === 0) return "-";
  const r = ours / etcd;
  const rr = Number(r.toFixed(2));
  return `${r.toFixed(2)}${(wantAtLeast ? rr >= 1 : rr <= 1) ? "" : " !"}`;
}

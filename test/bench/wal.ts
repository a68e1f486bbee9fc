// Raw write+fdatasync cost by preallocation method, then WAL latency/throughput: `bun test/bench/wal.ts [dir] [segmentMB]` (not part of the test suite).
// 1 writer: sequential saves of one ~150-byte entry + hard state. 64 writers: concurrent saves.
import { mkdirSync, rmSync } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { preallocate, writeZeros } from "../../internal/wal/segment.ts";
import { Wal } from "../../internal/wal/wal.ts";

const base = process.argv[2] ?? "/var/tmp/coreos-walbench";
const segmentSize = Number(process.argv[3] ?? 64) << 20;
const data = new TextEncoder().encode(JSON.stringify({ id: "0123456789abcdef", cmd: { op: "set", key: "/bench/key-000123", value: "x".repeat(64), dir: false, expireAt: null } }));

function pct(xs: number[], p: number): number {
  return xs[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;
}

async function run(writers: number, total: number, inlineWriteMax?: number): Promise<void> {
  const dir = join(base, `w${writers}`);
  rmSync(dir, { recursive: true, force: true });
  const wal = await Wal.create(dir, new Uint8Array([1]), { segmentSize, ...(inlineWriteMax === undefined ? {} : { inlineWriteMax }) });
  let index = 0;
  const lat: number[] = [];
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: writers }, async () => {
      while (index < total) {
        const i = ++index;
        const t = performance.now();
        await wal.save({ term: 1, vote: "1", commit: i - 1 }, [{ term: 1, index: i, type: 0, data }]);
        lat.push(performance.now() - t);
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  const { syncs, writes } = wal.stats;
  console.log(
    `${inlineWriteMax === 0 ? "pool write " : "inline write"} ${String(writers).padStart(2)} writer(s): ${(total / secs).toFixed(0).padStart(6)} saves/s  ` +
      `p50 ${pct(lat, 0.5).toFixed(3)} ms  p99 ${pct(lat, 0.99).toFixed(3)} ms  ` +
      `${syncs} fdatasyncs, ${writes} writes, ${(total / syncs).toFixed(1)} saves/sync  (${data.length} B entries)`,
  );
  await wal.close();
  rmSync(dir, { recursive: true, force: true });
}

/** 160-byte write + fdatasync in a loop: growing file vs fallocate vs zeros written up front. */
async function raw(mode: "append" | "fallocate" | "zeros", n = 3000): Promise<void> {
  mkdirSync(base, { recursive: true });
  const path = join(base, `raw-${mode}`);
  rmSync(path, { force: true });
  const fh = await open(path, "w+");
  let t = performance.now();
  if (mode === "fallocate") await preallocate(fh, segmentSize);
  if (mode === "zeros") await writeZeros(fh, 0, segmentSize);
  await fh.datasync();
  const prep = performance.now() - t;
  const rec = new Uint8Array(160).fill(7);
  const lat: number[] = [];
  for (let i = 0; i < n; i++) {
    t = performance.now();
    await fh.write(rec, 0, rec.length, i * rec.length);
    await fh.datasync();
    lat.push(performance.now() - t);
  }
  await fh.close();
  rmSync(path, { force: true });
  lat.sort((a, b) => a - b);
  const mean = lat.reduce((a, b) => a + b, 0) / n;
  console.log(
    `raw ${mode.padEnd(9)} write+fdatasync: mean ${mean.toFixed(3)} ms  p50 ${pct(lat, 0.5).toFixed(3)} ms  ` +
      `p99 ${pct(lat, 0.99).toFixed(3)} ms  (preparing the file: ${prep.toFixed(1)} ms)`,
  );
}

for (let round = 0; round < 2; round++) for (const m of ["append", "fallocate", "zeros"] as const) await raw(m);

// inlineWriteMax 0 = every append through the thread pool, for comparison with the default
for (let round = 0; round < 2; round++) {
  for (const inline of [undefined, 0]) {
    await run(1, 5000, inline);
    await run(64, 50000, inline);
  }
}
rmSync(base, { recursive: true, force: true });

// The heap governor's decisions, on a model heap (the engine's own heap size moves only when it
// does its accounting, which a test cannot time), and once on the real engine: idle, it is quiet.
import { expect, test } from "bun:test";
import { startHeapGovernor } from "../../internal/kv/heap-governor.ts";

const MiB = 1 << 20;

/** A heap whose size the test sets; a full collection leaves `live` bytes. */
function modelHeap(size: number, live = size) {
  const m = {
    size,
    live,
    collections: 0,
    heapSize: () => m.size,
    fullGC: () => {
      m.collections++;
      m.size = m.live;
    },
  };
  return m;
}

/** A governor that only runs when the test ticks it. */
function governor(heap: ReturnType<typeof modelHeap>, o: { floorBytes?: number; maxHeapBytes?: number } = {}) {
  const g = startHeapGovernor({ intervalMs: 60_000, ratio: 1.3, slackBytes: 4 * MiB, engine: heap, ...o });
  g.stop();
  return g;
}

test("collects once the heap outgrows 1.3x what the last collection left plus the slack, and measures from what it leaves", () => {
  const heap = modelHeap(40 * MiB);
  const g = governor(heap);
  heap.size = 40 * MiB * 1.3 + 4 * MiB; // at the threshold: not past it
  g.tick();
  expect(g.collections).toBe(0);
  heap.size += 1;
  g.tick();
  expect(g.collections).toBe(1);
  expect(heap.size).toBe(40 * MiB);
  // the next threshold is counted from what the collection left
  heap.live = 50 * MiB;
  heap.size = 60 * MiB;
  g.tick();
  expect(g.collections).toBe(2);
  heap.size = 50 * MiB * 1.3 + 4 * MiB;
  g.tick();
  expect(g.collections).toBe(2);
});

test("a collection the engine made on its own lowers the base", () => {
  const heap = modelHeap(100 * MiB);
  const g = governor(heap);
  heap.size = 40 * MiB; // the engine collected
  g.tick();
  heap.size = 60 * MiB; // past 1.3 * 40 + 4, though below the first base
  g.tick();
  expect(g.collections).toBe(1);
});

test("a heap below floorBytes is left to the engine, however much it grew", () => {
  const heap = modelHeap(2 * MiB);
  const g = governor(heap, { floorBytes: 32 * MiB });
  heap.size = 30 * MiB; // 15 times the base
  g.tick();
  expect(g.collections).toBe(0);
  heap.size = 33 * MiB;
  g.tick();
  expect(g.collections).toBe(1);
});

test("a heap past maxHeapBytes is left to the engine", () => {
  const heap = modelHeap(100 * MiB);
  const g = governor(heap, { maxHeapBytes: 256 * MiB });
  heap.size = 300 * MiB;
  g.tick();
  expect(g.collections).toBe(0);
  heap.size = 200 * MiB;
  g.tick();
  expect(g.collections).toBe(1);
});

test("on the real engine, an idle heap is left alone", async () => {
  Bun.gc(true);
  const g = startHeapGovernor({ intervalMs: 1 });
  try {
    for (let i = 0; i < 40; i++) await Bun.sleep(2);
    expect(g.collections).toBe(0);
  } finally {
    g.stop();
  }
});

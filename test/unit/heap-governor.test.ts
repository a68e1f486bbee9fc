// The heap governor runs full collections when garbage piles up, and leaves an idle heap alone.
import { expect, test } from "bun:test";
import { heapSize } from "bun:jsc";
import { startHeapGovernor } from "../../internal/kv/heap-governor.ts";

test("collects once the heap outgrows what the last collection left", async () => {
  // the ceiling above this process's heap: in a full run, earlier test files leave it past the default 256 MiB
  const g = startHeapGovernor({ intervalMs: 1, ratio: 1.1, slackBytes: 1 << 20, floorBytes: 0, maxHeapBytes: heapSize() + (512 << 20) });
  const held: number[][] = [];
  try {
    // grow the heap with data that stays reachable across samples (young garbage would be gone
    // before the governor looked) until it steps in; bounded at ~200 MB
    for (let i = 0; i < 100 && g.collections === 0; i++) {
      for (let j = 0; j < 128; j++) held.push(new Array(2048).fill(i));
      await Bun.sleep(2);
    }
    expect(g.collections).toBeGreaterThan(0);
  } finally {
    g.stop();
    held.length = 0;
  }
});

test("an idle heap is left alone", async () => {
  Bun.gc(true);
  const g = startHeapGovernor({ intervalMs: 1 });
  try {
    for (let i = 0; i < 40; i++) await Bun.sleep(2);
    expect(g.collections).toBe(0);
  } finally {
    g.stop();
  }
});

test("a heap below floorBytes is left to the engine, however much it grew", async () => {
  // the same heap watched by two governors, one with a floor far above it: once the one without
  // a floor has stepped in, the growth was there to act on
  const floored = startHeapGovernor({ intervalMs: 1, ratio: 1.1, slackBytes: 1 << 20, floorBytes: heapSize() + (1 << 30), maxHeapBytes: Infinity });
  const control = startHeapGovernor({ intervalMs: 1, ratio: 1.1, slackBytes: 1 << 20, floorBytes: 0, maxHeapBytes: Infinity });
  const held: number[][] = [];
  try {
    // bounded at ~200 MB, as above
    for (let i = 0; i < 100 && control.collections === 0; i++) {
      for (let j = 0; j < 128; j++) held.push(new Array(2048).fill(i));
      await Bun.sleep(2);
    }
    expect(control.collections).toBeGreaterThan(0);
    expect(floored.collections).toBe(0);
  } finally {
    floored.stop();
    control.stop();
    held.length = 0;
  }
});

test("a heap past maxHeapBytes is left to the engine", async () => {
  const g = startHeapGovernor({ intervalMs: 1, ratio: 1, slackBytes: 0, floorBytes: 0, maxHeapBytes: 1 });
  const held: number[][] = [];
  try {
    for (let i = 0; i < 20; i++) {
      for (let j = 0; j < 64; j++) held.push(new Array(2048).fill(i));
      await Bun.sleep(2);
    }
    expect(heapSize()).toBeGreaterThan(1);
    expect(g.collections).toBe(0);
  } finally {
    g.stop();
    held.length = 0;
  }
});

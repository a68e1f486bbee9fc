// Caps how far the JavaScript heap grows past the live data under load.
//
// JavaScriptCore runs a full collection once the heap has about doubled since the last one (as Go's
// GOGC=100 does for etcd). Under a write burst most of that growth is request garbage that outlived
// a young collection (it was in flight), and all of it shows in peak RSS: 100,000 PUTs of 100 B
// peaked at ~145 MB, ~40 MB of it garbage waiting for a collection. The governor samples the heap
// size every `intervalMs` and, once it exceeds `ratio` times what the last collection left plus
// `slackBytes`, runs a full collection at once (the same 100,000 PUTs: ~120 MB).
//
// A full collection stops the process: about 7 ms with 10,000 keys, 20-35 ms with 100,000 (2
// cores). Done a few times per second, those pauses were most of the PUT p99 (16 connections,
// 10,000 keys: 14 ms with them, 6 ms without). So the governor only acts on a heap past
// `floorBytes`, where the garbage is worth a pause in memory; a smaller one is left to the engine's
// own collector, which runs concurrently. Above `maxHeapBytes` it steps back too, rather than
// pause for longer.
import { fullGC, heapSize } from "bun:jsc";

export interface HeapGovernorOptions {
  /** How often the heap size is sampled (default 50 ms). */
  intervalMs?: number;
  /** Collect once the heap is this many times the size after the last collection (default 1.3). */
  ratio?: number;
  /** ... plus this many bytes, so that a small heap is not collected all the time (default 4 MiB). */
  slackBytes?: number;
  /** Below this heap size, do nothing: the engine's collector keeps up (default 32 MiB). */
  floorBytes?: number;
  /** Above this heap size, do nothing: pauses would be too long (default 256 MiB). */
  maxHeapBytes?: number;
  /** The engine: its heap size and a full collection (tests give a model heap). */
  engine?: { heapSize(): number; fullGC(): void };
}

export interface HeapGovernor {
  /** Full collections run by the governor so far. */
  readonly collections: number;
  /** Time spent in them, ms. */
  readonly pauseMs: number;
  /** One sample and decision, as the timer runs it every `intervalMs`. */
  tick(): void;
  stop(): void;
}

export function startHeapGovernor(o: HeapGovernorOptions = {}): HeapGovernor {
  const ratio = o.ratio ?? 1.3;
  const slack = o.slackBytes ?? 4 << 20;
  const floor = o.floorBytes ?? 32 << 20;
  const max = o.maxHeapBytes ?? 256 << 20;
  const engine = o.engine ?? { heapSize, fullGC };
  /** The smallest heap seen since the last collection: what the last collection left. */
  let base = engine.heapSize();
  let collections = 0;
  let pauseMs = 0;
  const tick = () => {
    const h = engine.heapSize();
    if (h < base) base = h; // the engine collected on its own
    if (h <= base * ratio + slack || h <= floor || h > max) return;
    const t0 = performance.now();
    engine.fullGC();
    pauseMs += performance.now() - t0;
    collections++;
    base = engine.heapSize();
  };
  const g: HeapGovernor = {
    get collections() {
      return collections;
    },
    get pauseMs() {
      return pauseMs;
    },
    tick,
    stop: () => clearInterval(timer),
  };
  const timer = setInterval(tick, o.intervalMs ?? 50);
  // never what keeps the process alive
  timer.unref();
  return g;
}

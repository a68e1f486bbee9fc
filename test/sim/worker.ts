// A simulation worker: runs the seeds it is sent and answers with their results.
import type { WorkerReply, WorkerRequest } from "./parallel.ts";
import { runSimulation } from "./simulator.ts";

declare const self: Worker;

self.onmessage = (ev: MessageEvent<WorkerRequest>) => {
  const results = ev.data.seeds.map((seed) => runSimulation({ ...ev.data.options, seed }));
  self.postMessage({ results } satisfies WorkerReply);
};

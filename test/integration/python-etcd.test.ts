// python-etcd (Debian's python3-etcd) against the real etcd and against ours: same transcript.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { startEtcd, startOurs, type Server } from "../helpers/procs.ts";

const SCRIPT = join(import.meta.dir, "python/scenario.py");

async function transcript(s: Server): Promise<Array<Record<string, unknown>>> {
  const port = new URL(s.url).port;
  const p = Bun.spawn(["/usr/bin/python3", SCRIPT, "127.0.0.1", port], { stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => p.kill(), 60_000);
  const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  clearTimeout(timer);
  if ((await p.exited) !== 0) throw new Error(`python-etcd scenario failed: ${err}`);
  return JSON.parse(out);
}

let etcd: Server;
let ours: Server;
let theirs: Array<Record<string, unknown>>;
let mine: Array<Record<string, unknown>>;

beforeAll(async () => {
  [etcd, ours] = await Promise.all([startEtcd(), startOurs()]);
  [theirs, mine] = await Promise.all([transcript(etcd), transcript(ours)]);
}, 120_000);

afterAll(async () => {
  await Promise.all([etcd?.stop(), ours?.stop()]);
});

test("python-etcd sees the same answers from our server as from etcd", () => {
  expect(mine.length).toBeGreaterThan(20);
  for (let i = 0; i < theirs.length; i++) expect({ i, ...mine[i] }).toEqual({ i, ...theirs[i] });
});

test("the scenario exercised errors, watches and the lock recipe", () => {
  const byStep = new Map(mine.map((s) => [s.step, s]));
  expect(byStep.get("test_and_set fail")?.error).toBe("EtcdCompareFailed");
  expect(byStep.get("read missing")?.error).toBe("EtcdKeyNotFound");
  expect(byStep.get("watch outdated")?.error).toBe("EtcdEventIndexCleared");
  expect((byStep.get("watch")?.ok as Record<string, unknown>)?.value).toBe("fired");
  expect(byStep.get("lock")?.ok).toEqual([true, false]);
});

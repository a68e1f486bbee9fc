// A removed member stops. Stopped while its attributes publish is still in flight (a member removed
// right after it joined stops exactly then), it must finish stopping: the publish retried on its
// rejection; once stopped, every retry failed at once, so the retries ran on microtasks alone and
// starved the event loop, and the stop, and the removed member's exit, never came. Restarted on a
// snapshot that holds its removal, it must learn of it as it opens.
import { afterAll, expect, test } from "bun:test";
import { join } from "node:path";
import type { ClusterState } from "../../internal/kv/cluster.ts";
import { EtcdServer, type ServerConfig } from "../../internal/kv/server.ts";
import { Snapshotter } from "../../internal/snap/snapshotter.ts";
import { Wal } from "../../internal/wal/wal.ts";
import { cleanup, ROOT, tempDir } from "../helpers/procs.ts";

const dir = tempDir();
afterAll(() => cleanup(dir));

// In a child process: a starved event loop cannot be timed out from inside it.
const child = `
import { EtcdServer } from ${JSON.stringify(join(ROOT, "internal/kv/server.ts"))};
const peer = "http://127.0.0.1:1";
const server = await EtcdServer.open({
  name: "solo", dataDir: ${JSON.stringify(join(dir, "solo.etcd"))},
  advertiseClientUrls: ["http://127.0.0.1:2"], advertisePeerUrls: [peer],
  initialCluster: new Map([["solo", [peer]]]), clusterState: "new", clusterToken: "t",
  heartbeatMs: 100, electionMs: 1000, snapshotCount: 10000,
});
// A lone voter leads as it opens and proposes its attributes; they are not applied yet.
console.log(JSON.stringify({ leader: server.leaderId === server.id, published: server.published }));
await server.stop();
console.log("stopped");
process.exit(0);
`;

test("a member stopped while publishing its attributes finishes stopping", async () => {
  const proc = Bun.spawn([process.execPath, "-e", child], { cwd: ROOT, stdout: "pipe", stderr: "ignore" });
  const exited = await Promise.race([proc.exited, Bun.sleep(20_000).then(() => null)]);
  if (exited === null) proc.kill("SIGKILL");
  const out = (await new Response(proc.stdout).text()).trim().split("\n");
  // The case under test: the publish was still in flight when the stop began.
  expect(JSON.parse(out[0]!)).toEqual({ leader: true, published: false });
  expect(out[1]).toBe("stopped");
  expect(exited).toBe(0);
}, 30_000);

test("a member restarted on a snapshot that holds its removal learns of it as it opens", async () => {
  const peer = "http://127.0.0.1:1";
  const cfg: ServerConfig = {
    name: "gone", dataDir: join(dir, "gone.etcd"),
    advertiseClientUrls: ["http://127.0.0.1:2"], advertisePeerUrls: [peer],
    initialCluster: new Map([["gone", [peer]]]), clusterState: "new", clusterToken: "t",
    heartbeatMs: 100, electionMs: 1000, snapshotCount: 10000,
  };
  const first = await EtcdServer.open(cfg);
  // Its attributes entry, of the current term, is the last applied: the snapshot's index and term.
  for (let n = 0; n < 500 && !first.published; n++) await Bun.sleep(10);
  expect(first.published).toBe(true);
  const { appliedIndex: index, term, id } = first;
  const text = new TextDecoder().decode(first.snapshotData());
  await first.stop();

  // The snapshot a member makes right after applying its own removal.
  const nl = text.indexOf("\n");
  const state = JSON.parse(text.slice(0, nl)) as ClusterState;
  const removed: ClusterState = { members: state.members.filter((m) => m.id !== id), removed: [id] };
  const data = new TextEncoder().encode(`${JSON.stringify(removed)}${text.slice(nl)}`);
  await new Snapshotter(join(cfg.dataDir, "member", "snap")).save({ index, term, data });
  const { wal } = await Wal.open(join(cfg.dataDir, "member", "wal"), { index: 0, term: 0 });
  await wal.saveSnapshot({ index, term });
  await wal.close();

  const again = await EtcdServer.open(cfg);
  try {
    expect(Bun.peek.status(again.removal)).toBe("fulfilled");
  } finally {
    await again.stop();
  }
});

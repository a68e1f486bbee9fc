// A member stopped while its attributes publish is still in flight (a member removed right after
// it joined stops exactly then) must finish stopping. The publish retried on its rejection; once
// stopped, every retry failed at once, so the retries ran on microtasks alone and starved the
// event loop: the stop, and the removed member's exit, never came.
import { afterAll, expect, test } from "bun:test";
import { join } from "node:path";
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

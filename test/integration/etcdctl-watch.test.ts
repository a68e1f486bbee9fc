// The real etcdctl's long-running commands against our server: `watch --forever` prints every
// change, `exec-watch` runs its command with ETCD_WATCH_* set for each change.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { cleanup, startOurs, tempDir, type Server } from "../helpers/procs.ts";

let ours: Server;
const dir = tempDir("coreos-watch-");

beforeAll(async () => {
  ours = await startOurs();
});
afterAll(async () => {
  await ours?.stop();
  cleanup(dir);
});

function etcdctl(args: string[]) {
  return Bun.spawn(["etcdctl", "--endpoints", ours.url, ...args], {
    env: { ...process.env, ETCDCTL_API: "2" },
    stdout: "pipe",
    stderr: "pipe",
  });
}

async function put(key: string, value: string): Promise<void> {
  await fetch(`${ours.url}/v2/keys${key}`, {
    method: "PUT",
    body: `value=${value}`,
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
  });
}

async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await Bun.sleep(25);
}

test("watch --forever --recursive prints each change in order", async () => {
  const p = etcdctl(["watch", "--forever", "--recursive", "/wf"]);
  let out = "";
  const reader = (async () => {
    for await (const chunk of p.stdout as ReadableStream<Uint8Array>) out += new TextDecoder().decode(chunk);
  })();
  await Bun.sleep(300);
  for (let i = 0; i < 5; i++) await put(`/wf/k${i % 2}`, `v${i}`);
  await until(() => out.split("\n").length > 10);
  p.kill();
  await reader;
  // A recursive watch prints the action and key before each value.
  const expected = [0, 1, 2, 3, 4].flatMap((i) => [`[set] /wf/k${i % 2}`, `v${i}`]);
  expect(out.trim().split("\n")).toEqual(expected);
}, 20_000);

test("exec-watch runs the command with ETCD_WATCH_* for every change", async () => {
  const file = join(dir, "exec.log");
  const p = etcdctl([
    "exec-watch", "--recursive", "/ew", "--",
    "sh", "-c", `echo "$ETCD_WATCH_ACTION $ETCD_WATCH_KEY $ETCD_WATCH_VALUE" >> ${file}`,
  ]);
  await Bun.sleep(300);
  await put("/ew/a", "1");
  await until(() => {
    try {
      return readFileSync(file, "utf8").includes("/ew/a");
    } catch {
      return false;
    }
  });
  await put("/ew/b", "2");
  await until(() => readFileSync(file, "utf8").includes("/ew/b"));
  p.kill();
  await p.exited;
  expect(readFileSync(file, "utf8").trim().split("\n")).toEqual(["set /ew/a 1", "set /ew/b 2"]);
}, 20_000);

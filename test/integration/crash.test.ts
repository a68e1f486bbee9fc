// Durability: every write acknowledged before a kill -9 is there after restart, with its index;
// a corrupted log refuses to start with the file and offset named, and changes nothing.
import { afterAll, expect, test } from "bun:test";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BIN, cleanup, freePort, startOurs, tempDir, type Server } from "../helpers/procs.ts";

const dir = tempDir("coreos-crash-");
const dataDir = join(dir, "n1.etcd");
const walDir = join(dataDir, "member", "wal");
const opts = () => ({ name: "n1", dataDir, extraArgs: ["--snapshot-count", "300"] });
let server: Server | undefined;

afterAll(async () => {
  await server?.kill();
  cleanup(dir);
});

interface Ack {
  key: string;
  value: string;
  index: number;
}

/** A client that writes its own keys until stopped, recording what the server acknowledged. */
async function writer(url: string, id: number, acks: Ack[], stop: { now: boolean }): Promise<void> {
  for (let n = 0; n < 100_000 && !stop.now; n++) {
    const key = `/crash/c${id}/k${n % 50}`;
    const value = `v${n}`;
    try {
      const r = await fetch(`${url}/v2/keys${key}`, {
        method: "PUT",
        body: `value=${value}`,
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
      });
      if (r.status === 200 || r.status === 201) {
        const body = (await r.json()) as { node: { modifiedIndex: number } };
        acks.push({ key, value, index: body.node.modifiedIndex });
      }
    } catch {
      return; // the server died under us: whatever was not acknowledged may be lost
    }
  }
}

function lastAckPerKey(acks: Ack[]): Map<string, Ack> {
  const last = new Map<string, Ack>();
  for (const a of acks) if ((last.get(a.key)?.index ?? 0) < a.index) last.set(a.key, a);
  return last;
}

test("acknowledged writes survive kill -9, across snapshots and log replay", async () => {
  server = await startOurs(opts());
  const acks: Ack[] = [];
  const stop = { now: false };
  const writers = Array.from({ length: 8 }, (_, i) => writer(server!.url, i, acks, stop));
  // Let the writers run, then kill the server while they are mid-request.
  const deadline = Date.now() + 10_000;
  while (acks.length < 3000 && Date.now() < deadline) await Bun.sleep(20);
  await server.kill();
  stop.now = true;
  await Promise.all(writers);
  expect(acks.length).toBeGreaterThan(1000);

  server = await startOurs(opts());
  for (const [key, a] of lastAckPerKey(acks)) {
    const r = await fetch(`${server.url}/v2/keys${key}`);
    const body = (await r.json()) as { node: { value: string; modifiedIndex: number } };
    // A later write may have been applied without its answer arriving; never an older one.
    expect(body.node.modifiedIndex).toBeGreaterThanOrEqual(a.index);
    if (body.node.modifiedIndex === a.index) expect(body.node.value).toBe(a.value);
  }
  const maxAck = Math.max(...acks.map((a) => a.index));
  const r = await fetch(`${server.url}/v2/keys/after`, {
    method: "PUT",
    body: "value=1",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
  });
  const body = (await r.json()) as { node: { modifiedIndex: number } };
  expect(body.node.modifiedIndex).toBeGreaterThan(maxAck);
  expect(readdirSync(join(dataDir, "member", "snap")).some((f) => f.endsWith(".snap"))).toBe(true);
  await server.stop();
  server = undefined;
}, 60_000);

async function startFails(): Promise<{ code: number; stderr: string }> {
  const c = freePort();
  const p = freePort();
  const proc = Bun.spawn(
    [
      ...(process.env.COREOS_CMD?.split(" ") ?? [BIN]),
      "kv", "serve", "--name", "n1", "--data-dir", dataDir,
      "--listen-client-urls", `http://127.0.0.1:${c}`, "--advertise-client-urls", `http://127.0.0.1:${c}`,
      "--listen-peer-urls", `http://127.0.0.1:${p}`, "--initial-advertise-peer-urls", `http://127.0.0.1:${p}`,
      "--initial-cluster", `n1=http://127.0.0.1:${p}`,
    ],
    { stdout: "ignore", stderr: "pipe" },
  );
  const timer = setTimeout(() => proc.kill("SIGKILL"), 15_000);
  const stderr = await new Response(proc.stderr).text();
  clearTimeout(timer);
  return { code: await proc.exited, stderr };
}

test("a flipped byte inside the log refuses start-up, names file and offset, deletes nothing", async () => {
  const segments = readdirSync(walDir).filter((f) => f.endsWith(".wal")).sort();
  const file = join(walDir, segments[segments.length - 1]!);
  const bytes = readFileSync(file);
  let end = bytes.length;
  while (end > 0 && bytes[end - 1] === 0) end--;
  // Well inside the written part, so valid records follow the damaged one.
  const at = Math.floor(end / 2);
  bytes[at] = bytes[at]! ^ 0x5a;
  writeFileSync(file, bytes);
  const before = readdirSync(walDir).sort();

  const { code, stderr } = await startFails();
  expect(code).not.toBe(0);
  const lines = stderr.trim().split("\n");
  expect(lines[lines.length - 1]).toContain(segments[segments.length - 1]!);
  expect(lines[lines.length - 1]).toMatch(/offset \d+/);
  expect(readdirSync(walDir).sort()).toEqual(before);
  expect(readFileSync(file).equals(bytes)).toBe(true);

  // Undo the damage: the member starts again with its data.
  bytes[at] = bytes[at]! ^ 0x5a;
  writeFileSync(file, bytes);
  server = await startOurs(opts());
  expect((await fetch(`${server.url}/v2/keys/after`)).status).toBe(200);
}, 60_000);

// The update engine's control socket: GetStatus, Subscribe (current status first, then changes),
// StatusUpdate broadcasts, malformed input, and the client's reconnect after the engine restarts.
import { afterEach, expect, test } from "bun:test";
import { join } from "node:path";
import { createConnection } from "node:net";
import { emitStatus, getStatus, IDLE, NEED_REBOOT, Operation, StatusServer, subscribe, type Status } from "../../internal/update/status.ts";
import { cleanup, tempDir } from "../helpers/procs.ts";

const dirs: string[] = [];
const servers: StatusServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
  for (const d of dirs.splice(0)) cleanup(d);
});

function path(): string {
  const d = tempDir("coreos-status-");
  dirs.push(d);
  return join(d, "ue", "control.sock");
}

async function serve(p: string, s: Status = IDLE): Promise<StatusServer> {
  const srv = new StatusServer(p, s);
  await srv.start();
  servers.push(srv);
  return srv;
}

test("GetStatus answers the served status; setStatus changes it", async () => {
  const p = path();
  const srv = await serve(p);
  expect(await getStatus(p)).toEqual(IDLE);
  srv.setStatus({ ...NEED_REBOOT, new_version: "3000.0.0", new_size: 42 });
  expect(await getStatus(p)).toEqual({ ...NEED_REBOOT, new_version: "3000.0.0", new_size: 42 });
});

test("Subscribe: current status first, then each change, StatusUpdate broadcasts without changing GetStatus", async () => {
  const p = path();
  const srv = await serve(p);
  const ac = new AbortController();
  const seen: string[] = [];
  const done = (async () => {
    for await (const s of subscribe(p, { signal: ac.signal })) {
      seen.push(s.current_operation);
      if (seen.length === 1) srv.setStatus({ ...IDLE, current_operation: Operation.Downloading, progress: 0.5 });
      if (seen.length === 2) srv.setStatus({ ...IDLE, current_operation: Operation.Downloading, progress: 0.5 }); // no change: no line
      if (seen.length === 2) await emitStatus(p, NEED_REBOOT);
      if (seen.length === 3) ac.abort();
    }
  })();
  await done;
  expect(seen).toEqual([Operation.Idle, Operation.Downloading, Operation.UpdatedNeedReboot]);
  expect((await getStatus(p)).current_operation).toBe(Operation.Downloading);
});

test("the subscriber reconnects with backoff when the engine starts late and after it restarts", async () => {
  const p = path();
  const ac = new AbortController();
  const seen: string[] = [];
  let errors = 0;
  const it = subscribe(p, { signal: ac.signal, backoffMinMs: 20, backoffMaxMs: 100, onError: () => errors++ });
  const first = it.next();
  await Bun.sleep(100);
  let srv = await serve(p);
  seen.push((await first).value!.current_operation);
  expect(errors).toBeGreaterThan(0);
  await srv.close();
  servers.splice(0);
  srv = await serve(p, NEED_REBOOT);
  seen.push((await it.next()).value!.current_operation);
  ac.abort();
  expect((await it.next()).done).toBe(true);
  expect(seen).toEqual([Operation.Idle, Operation.UpdatedNeedReboot]);
});

test("bad requests get an error line and the connection stays usable; a live socket is not stolen", async () => {
  const p = path();
  await serve(p);
  const sock = createConnection(p);
  const lines: string[] = [];
  sock.setEncoding("utf8");
  let buf = "";
  sock.on("data", (d: string) => {
    buf += d;
    const parts = buf.split("\n");
    buf = parts.pop()!;
    lines.push(...parts);
  });
  sock.write('nope\n{"method":"Reboot"}\n{"method":"StatusUpdate","status":{"progress":1}}\n{"method":"GetStatus"}\n');
  for (let i = 0; i < 100 && lines.length < 4; i++) await Bun.sleep(10);
  sock.destroy();
  expect(lines.slice(0, 3).every((l) => l.includes('"error"'))).toBe(true);
  expect(JSON.parse(lines[3]!)).toEqual(IDLE);
  await expect(new StatusServer(p).start()).rejects.toThrow("another update engine");
});

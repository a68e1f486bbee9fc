// The control protocol's engine commands: AttemptUpdate and ResetStatus reach the handlers, a
// refusal comes back as the error line, a stand-in server without handlers refuses both, the same
// protocol works over TCP, and the older methods are unchanged.
import { afterAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { attemptUpdate, getStatus, IDLE, NEED_REBOOT, resetStatus, StatusServer, subscribe, tcpAddress, type Status } from "../../internal/update/status.ts";
import { cleanup, tempDir } from "../helpers/procs.ts";

const dir = tempDir("coreos-ue-control-");
afterAll(() => cleanup(dir));

describe("engine commands on the control socket", () => {
  test("AttemptUpdate and ResetStatus call the handlers; a refusal is the engine's message", async () => {
    const calls: string[] = [];
    let refuse = false;
    const srv = new StatusServer(join(dir, "a.sock"), NEED_REBOOT, {
      attemptUpdate: async () => void calls.push("attempt"),
      resetStatus: async () => {
        calls.push("reset");
        if (refuse) throw new Error("ResetStatus is not allowed while UPDATE_STATUS_DOWNLOADING");
      },
    });
    await srv.start();
    try {
      await attemptUpdate(srv.path);
      await resetStatus(srv.path);
      refuse = true;
      await expect(resetStatus(srv.path)).rejects.toThrow("ResetStatus is not allowed while UPDATE_STATUS_DOWNLOADING");
      expect(calls).toEqual(["attempt", "reset", "reset"]);
      expect(await getStatus(srv.path)).toEqual(NEED_REBOOT);
    } finally {
      await srv.close();
    }
  });

  test("a server without handlers (locksmith's stand-in) refuses both", async () => {
    const srv = new StatusServer(join(dir, "b.sock"), IDLE);
    await srv.start();
    try {
      await expect(attemptUpdate(srv.path)).rejects.toThrow("AttemptUpdate: not an update engine");
      await expect(resetStatus(srv.path)).rejects.toThrow("ResetStatus: not an update engine");
    } finally {
      await srv.close();
    }
  });

  test("the same protocol on TCP: status, subscribe, commands", async () => {
    const calls: string[] = [];
    const srv = new StatusServer(join(dir, "c.sock"), IDLE, { attemptUpdate: async () => void calls.push("attempt"), resetStatus: async () => undefined });
    await srv.start();
    const port = await srv.listenTcp("127.0.0.1", 0);
    const addr = `tcp://127.0.0.1:${port}`;
    const stop = new AbortController();
    try {
      expect(await getStatus(addr)).toEqual(IDLE);
      await attemptUpdate(addr);
      expect(calls).toEqual(["attempt"]);
      const seen: Status[] = [];
      const done = (async () => {
        for await (const s of subscribe(addr, { signal: stop.signal })) {
          seen.push(s);
          if (seen.length === 2) return;
        }
      })();
      for (let i = 0; i < 400 && seen.length === 0; i++) await Bun.sleep(5);
      srv.setStatus(NEED_REBOOT);
      await done;
      expect(seen).toEqual([IDLE, NEED_REBOOT]);
    } finally {
      stop.abort();
      await srv.close();
    }
  });

  test.each([
    ["tcp://127.0.0.1:4000", { host: "127.0.0.1", port: 4000 }],
    ["tcp://[::1]:4000", { host: "::1", port: 4000 }],
    ["/run/update-engine/control.sock", null],
  ])("address %p", (a, want) => {
    expect(tcpAddress(a)).toEqual(want);
  });

  test.each(["tcp://127.0.0.1", "tcp://:80", "tcp://h:0", "tcp://h:70000", "tcp://h:x"])("bad address %p", (a) => {
    expect(() => tcpAddress(a)).toThrow("not tcp://HOST:PORT");
  });
});

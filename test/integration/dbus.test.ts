// com.coreos.update1 against a real dbus-daemon, checked with the dbus package's own tools
// (dbus-send, dbus-monitor) as the independent peers.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Bus, DBusError } from "../../internal/dbus/bus.ts";
import { connectUpdate1, serveUpdate1, subscribeUpdate1, update1Policy, type Update1Server } from "../../internal/dbus/update1.ts";
import type { Status } from "../../internal/update/status.ts";
import { startBus, type PrivateBus } from "./dbus-daemon.ts";

let bus: PrivateBus;
beforeAll(async () => {
  bus = await startBus();
});
afterAll(async () => {
  await bus.stop();
});

async function tool(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const p = Bun.spawn(argv, { env: { ...process.env, ...bus.env }, stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, out, err };
}

const call = (member: string) => tool(["dbus-send", "--system", "--print-reply", "--reply-timeout=5000", "--dest=com.coreos.update1", "/com/coreos/update1", `com.coreos.update1.Manager.${member}`]);

/** Resolves once `pred` holds, polling; bounded. */
async function until(pred: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(20);
  }
}

const DOWNLOADING: Status = { last_checked_time: 1715600000, progress: 0.5, current_operation: "UPDATE_STATUS_DOWNLOADING", new_version: "1.2.3", new_size: 123456789012 };

describe("serveUpdate1", () => {
  let server: Update1Server;
  let status: Status = DOWNLOADING;
  const calls: string[] = [];
  beforeAll(async () => {
    server = (await serveUpdate1(
      {
        getStatus: () => status,
        attemptUpdate: async () => void calls.push("AttemptUpdate"),
        resetStatus: async () => {
          calls.push("ResetStatus");
          if (status.current_operation === "UPDATE_STATUS_IDLE") throw new Error("nothing to reset");
        },
      },
      bus.env,
    ))!;
  });
  afterAll(async () => {
    await server.close();
  });

  test("dbus-send GetStatus prints our five values with their D-Bus types", async () => {
    const r = await call("GetStatus");
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const values = r.out.split("\n").slice(1).map((l) => l.trim()).filter(Boolean);
    expect(values).toEqual(["int64 1715600000", "double 0.5", 'string "UPDATE_STATUS_DOWNLOADING"', 'string "1.2.3"', "int64 123456789012"]);
  });

  test("AttemptUpdate and ResetStatus reach the handlers; ResetStatus answers true; a failure is an error reply", async () => {
    expect((await call("AttemptUpdate")).code).toBe(0);
    const reset = await call("ResetStatus");
    expect(reset.out).toContain("boolean true");
    expect(calls).toEqual(["AttemptUpdate", "ResetStatus"]);
    status = { ...DOWNLOADING, current_operation: "UPDATE_STATUS_IDLE" };
    const failed = await call("ResetStatus");
    expect(failed.code).not.toBe(0);
    expect(failed.err).toContain("org.freedesktop.DBus.Error.Failed: nothing to reset");
    status = DOWNLOADING;
  });

  test("connectUpdate1 (update_engine_client's side) calls the three methods", async () => {
    const c = (await connectUpdate1(bus.env))!;
    try {
      expect(await c.getStatus()).toEqual(DOWNLOADING);
      const before = calls.length;
      await c.attemptUpdate();
      await c.resetStatus();
      expect(calls.slice(before)).toEqual(["AttemptUpdate", "ResetStatus"]);
      status = { ...DOWNLOADING, current_operation: "UPDATE_STATUS_IDLE" };
      const err = await c.resetStatus().catch((e) => e);
      expect(err).toBeInstanceOf(DBusError);
      expect((err as DBusError).errorName).toBe("org.freedesktop.DBus.Error.Failed");
      expect((err as DBusError).text).toBe("nothing to reset");
    } finally {
      status = DOWNLOADING;
      c.close();
    }
  });

  test("an unknown method or wrong arguments get the standard errors", async () => {
    expect((await call("Frobnicate")).err).toContain("org.freedesktop.DBus.Error.UnknownMethod");
    const r = await tool(["dbus-send", "--system", "--print-reply", "--dest=com.coreos.update1", "/com/coreos/update1", "com.coreos.update1.Manager.GetStatus", "string:x"]);
    expect(r.err).toContain("org.freedesktop.DBus.Error.InvalidArgs");
  });

  test("org.freedesktop.DBus.Peer.Ping answers", async () => {
    const r = await tool(["dbus-send", "--system", "--print-reply", "--dest=com.coreos.update1", "/com/coreos/update1", "org.freedesktop.DBus.Peer.Ping"]);
    expect(r.code).toBe(0);
    expect(r.out).toContain("method return");
  });

  test("introspection describes the interface (busctl/d-feet)", async () => {
    const r = await tool(["dbus-send", "--system", "--print-reply", "--dest=com.coreos.update1", "/com/coreos/update1", "org.freedesktop.DBus.Introspectable.Introspect"]);
    expect(r.out).toContain('<signal name="StatusUpdate"><arg type="x"/><arg type="d"/><arg type="s"/><arg type="s"/><arg type="x"/></signal>');
    expect(r.out).toContain('<method name="ResetStatus"><arg type="b" direction="out"/></method>');
  });

  test("a second server on the same bus is refused: the name is taken", async () => {
    await expect(serveUpdate1({ getStatus: () => status, attemptUpdate: async () => {}, resetStatus: async () => {} }, bus.env)).rejects.toThrow(/already owned/);
  });

  test("emit: dbus-monitor and our subscriber both see StatusUpdate", async () => {
    const mon = Bun.spawn(["dbus-monitor", "--system", "type='signal',interface='com.coreos.update1.Manager'"], { env: { ...process.env, ...bus.env }, stdout: "pipe", stderr: "pipe" });
    let text = "";
    const reader = mon.stdout.getReader();
    const pump = (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        text += new TextDecoder().decode(value);
      }
    })();
    const seen: Status[] = [];
    const sub = (await subscribeUpdate1((s) => seen.push(s), {}, bus.env))!;
    await until(() => seen.length === 1, "the initial GetStatus");
    expect(seen[0]).toEqual(DOWNLOADING);
    // dbus-monitor has no "ready" line: emit until it has seen one.
    const next: Status = { last_checked_time: 1715600001, progress: 1, current_operation: "UPDATE_STATUS_UPDATED_NEED_REBOOT", new_version: "1.2.4", new_size: 5 };
    for (let i = 0; i < 100 && !text.includes("UPDATE_STATUS_UPDATED_NEED_REBOOT"); i++) {
      server.emit(next);
      await Bun.sleep(50);
    }
    mon.kill();
    await pump;
    expect(text).toMatch(/signal .*path=\/com\/coreos\/update1; interface=com.coreos.update1.Manager; member=StatusUpdate\n\s+int64 1715600001\n\s+double 1\n\s+string "UPDATE_STATUS_UPDATED_NEED_REBOOT"\n\s+string "1.2.4"\n\s+int64 5/);
    await until(() => seen.length >= 2, "the signal at our subscriber");
    expect(seen[1]).toEqual(next);
    // A message far larger than one socket read arrives in pieces and is put back together; a
    // burst of small ones arrives several to a read.
    const big: Status = { ...next, new_version: "v".repeat(300_000) };
    const count = seen.length;
    server.emit(big);
    for (let i = 0; i < 50; i++) server.emit({ ...next, new_size: i });
    await until(() => seen.length === count + 51, "the big signal and the burst");
    expect(seen[count]).toEqual(big);
    expect(seen.slice(count + 1).map((s) => s.new_size)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    sub.close();
  });
});

describe("subscribeUpdate1", () => {
  test("hears dbus-send's StatusUpdate (any sender) and drops a malformed one", async () => {
    const seen: Status[] = [];
    const invalid: string[] = [];
    const sub = (await subscribeUpdate1((s) => seen.push(s), { onInvalid: (m) => invalid.push(m.signature) }, bus.env))!;
    const send = (...args: string[]) => tool(["dbus-send", "--system", "--type=signal", "/com/coreos/update1", "com.coreos.update1.Manager.StatusUpdate", ...args]);
    expect((await send("int64:0", "double:0", "string:UPDATE_STATUS_UPDATED_NEED_REBOOT")).code).toBe(0);
    expect((await send("int64:0", "double:0", "string:UPDATE_STATUS_UPDATED_NEED_REBOOT", "string:", "int64:0")).code).toBe(0);
    await until(() => seen.length === 1 && invalid.length === 1, "one valid and one invalid signal");
    expect(seen[0]).toEqual({ last_checked_time: 0, progress: 0, current_operation: "UPDATE_STATUS_UPDATED_NEED_REBOOT", new_version: "", new_size: 0 });
    expect(invalid).toEqual(["xds"]);
    sub.close();
  });

  test("started before the engine: GetStatus runs when com.coreos.update1 gets an owner", async () => {
    // A bus of its own, so the name is free.
    const other = await startBus();
    try {
      const seen: Status[] = [];
      const errors: Error[] = [];
      const sub = (await subscribeUpdate1((s) => seen.push(s), { onError: (e) => errors.push(e) }, other.env))!;
      expect(seen).toEqual([]);
      const client = (await connectUpdate1(other.env))!;
      const absent = await client.getStatus().catch((e) => e);
      expect((absent as DBusError).errorName).toBe("org.freedesktop.DBus.Error.ServiceUnknown");
      client.close();
      const server = (await serveUpdate1({ getStatus: () => DOWNLOADING, attemptUpdate: async () => {}, resetStatus: async () => {} }, other.env))!;
      await until(() => seen.length === 1, "GetStatus after the owner appeared");
      expect(seen[0]).toEqual(DOWNLOADING);
      expect(errors).toEqual([]);
      sub.close();
      await server.close();
    } finally {
      await other.stop();
    }
  });

  test("a bus that goes away is reported through onClose", async () => {
    const other = await startBus();
    const closed: (Error | null)[] = [];
    const sub = (await subscribeUpdate1(() => undefined, { onClose: (e) => closed.push(e) }, other.env))!;
    await other.stop();
    await until(() => closed.length === 1, "onClose");
    sub.close();
  });
});

describe("the com.coreos.update1 bus policy", () => {
  const handlers = { getStatus: () => DOWNLOADING, attemptUpdate: async () => {}, resetStatus: async () => {} };

  test("under the stock system bus policy, the policy's owner may own the name and be called", async () => {
    const strict = await startBus({ policy: update1Policy(String(process.getuid!()), []) });
    try {
      const server = (await serveUpdate1(handlers, strict.env))!;
      const c = (await connectUpdate1(strict.env))!;
      expect(await c.getStatus()).toEqual(DOWNLOADING);
      c.close();
      await server.close();
    } finally {
      await strict.stop();
    }
  });

  test("anyone else is refused the name by dbus-daemon", async () => {
    const strict = await startBus({ policy: update1Policy("nobody", [String(process.getuid!())]) });
    try {
      await expect(serveUpdate1(handlers, strict.env)).rejects.toThrow(/org.freedesktop.DBus.Error.AccessDenied/);
    } finally {
      await strict.stop();
    }
  });
});

describe("no system bus", () => {
  test("a missing socket is a quiet null, for the server and the subscriber alike", async () => {
    const env = { DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${bus.dir}/no-such-socket` };
    expect(await serveUpdate1({ getStatus: () => DOWNLOADING, attemptUpdate: async () => {}, resetStatus: async () => {} }, env)).toBeNull();
    expect(await subscribeUpdate1(() => undefined, {}, env)).toBeNull();
    expect(await connectUpdate1(env)).toBeNull();
    expect(await Bus.connect("tcp:host=127.0.0.1,port=1")).toBeNull();
  });
});

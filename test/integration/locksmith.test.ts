// locksmithctl against our kv serve and the real etcd: B2's outputs, errors and exit codes, groups,
// a bad stored value refused and left alone; send-need-reboot through the control socket; the
// daemon's strategy and window errors; --lock-ttl and the FleetLock endpoint on the same semaphore.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { Client } from "../../internal/kvclient/index.ts";
import { EtcdLock } from "../../internal/locksmith/etcdlock.ts";
import { fleetLockApp } from "../../internal/locksmith/fleetlock.ts";
import { semaphoreKey } from "../../internal/locksmith/semaphore.ts";
import { IDLE, Operation, StatusServer, subscribe } from "../../internal/update/status.ts";
import { cleanup, startEtcd, startOurs, tempDir, type Server } from "../helpers/procs.ts";
import { LOCKSMITH, NO_BUS, run } from "./locksmith-cmd.ts";

const dir = tempDir("coreos-locksmith-");
afterAll(() => cleanup(dir));

for (const kind of ["ours", "etcd"] as const) {
  describe(`locksmithctl against ${kind}`, () => {
    let srv: Server;
    let client: Client;
    let env: Record<string, string>;
    beforeAll(async () => {
      srv = kind === "ours" ? await startOurs() : await startEtcd();
      client = new Client({ endpoints: [srv.url] });
      env = { LOCKSMITHCTL_ENDPOINT: srv.url };
    });
    afterAll(async () => {
      await srv.stop();
    });

    test("status of a fresh cluster creates the initial value", async () => {
      const r = await run(["status"], env);
      expect(r).toEqual({ code: 0, out: "Available: 1\nMax: 1\n", err: "" });
      expect((await client.get(semaphoreKey(""))).node.value).toBe('{"semaphore":1,"max":1,"holders":null}');
    });

    test("lock, status with holders, the quirk at 0, unlock, set-max", async () => {
      expect((await run(["lock", "m1"], env)).code).toBe(0);
      expect((await run(["status"], env)).out).toBe("Available: 0\nMax: 1\n\nMACHINE ID\nm1\n");
      expect(await run(["lock", "m1"], env)).toEqual({ code: 1, out: "", err: "Error locking: semaphore is at 0\n" });
      expect(await run(["set-max", "3"], env)).toEqual({ code: 0, out: "Old-Max: 1\nMax: 3\n", err: "" });
      expect(await run(["lock", "m1"], env)).toEqual({ code: 1, out: "", err: "Error locking: holder exists\n" });
      expect((await run(["--endpoint", srv.url, "lock", "m0"])).code).toBe(0);
      expect((await client.get(semaphoreKey(""))).node.value).toBe('{"semaphore":1,"max":3,"holders":["m0","m1"]}');
      expect(await run(["set-max", "1"], env)).toEqual({ code: 0, out: "Old-Max: 3\nMax: 1\n", err: "" });
      expect((await run(["status"], env)).out).toBe("Available: -1\nMax: 1\n\nMACHINE ID\nm0\nm1\n");
      expect((await run(["unlock", "m0"], env)).code).toBe(0);
      expect((await run(["unlock", "m1"], env)).code).toBe(0);
      expect(await run(["unlock", "m1"], env)).toEqual({ code: 1, out: "", err: "Error unlocking: holder does not exist\n" });
      expect((await client.get(semaphoreKey(""))).node.value).toBe('{"semaphore":1,"max":1,"holders":[]}');
      expect(await run(["set-max", "x"], env)).toEqual({ code: 1, out: "", err: "Invalid maximum value: x\n" });
    });

    test("groups have their own key; LOCKSMITHCTL_GROUP and -group", async () => {
      expect((await run(["lock", "a"], { ...env, LOCKSMITHCTL_GROUP: "lb" })).code).toBe(0);
      expect((await client.get(semaphoreKey("lb"))).node.value).toBe('{"semaphore":0,"max":1,"holders":["a"]}');
      expect((await run(["-group=lb", "unlock", "a"], env)).code).toBe(0);
      expect((await run(["status"], env)).out).toBe("Available: 1\nMax: 1\n");
    });

    test("a bad stored value: clear error, exit 1, never overwritten", async () => {
      const key = semaphoreKey("bad");
      for (const raw of ["not json", '{"semaphore":1,"max":"2","holders":null}']) {
        await client.set(key, raw);
        for (const args of [["lock", "m"], ["unlock", "m"], ["set-max", "4"], ["status"]]) {
          const r = await run(["-group", "bad", ...args], env);
          expect(r.code).toBe(1);
          expect(r.err).toContain("refusing to overwrite");
          expect(r.err).toContain(key);
        }
        expect((await client.get(key)).node.value).toBe(raw);
      }
    });

    test("unknown subcommand exits 2; an unreachable etcd is an initialization error", async () => {
      expect(await run(["frob"], env)).toEqual({
        code: 2,
        out: "",
        err: 'locksmithctl: unknown subcommand: "frob"\nRun \'locksmithctl help\' for usage.\n',
      });
      const r = await run(["status"], { LOCKSMITHCTL_ENDPOINT: "http://127.0.0.1:1" });
      expect(r.code).toBe(1);
      expect(r.err).toStartWith("Error initializing etcd client: ");
    });

    test("--lock-ttl: a holder not renewed within the TTL is dropped by the next locker", async () => {
      let now = 1000;
      const l = new EtcdLock(client, { group: "ttl", lockTtl: 60, now: () => now });
      await l.init();
      await l.lock("dead");
      now += 30;
      await expect(l.lock("other")).rejects.toThrow("semaphore is at 0");
      now += 31;
      await l.lock("other");
      const { sem } = await l.get();
      expect(sem.holders).toEqual(["other"]);
      expect(sem.renewed).toEqual({ other: 1061 });
      // Old locksmithctl reads the value as B1.
      expect((await run(["-group", "ttl", "status"], env)).out).toBe("Available: 0\nMax: 1\n\nMACHINE ID\nother\n");
    });

    test("FleetLock: pre-reboot and steady-state on the same semaphore, idempotent", async () => {
      const locks = new Map<string, EtcdLock>();
      const app = fleetLockApp(async (g) => {
        if (!locks.has(g)) {
          const l = new EtcdLock(client, { group: g });
          await l.init();
          locks.set(g, l);
        }
        return locks.get(g)!;
      });
      const post = (path: string, body: unknown, header = true) =>
        app.request(path, {
          method: "POST",
          headers: header ? { "fleet-lock-protocol": "true" } : {},
          body: JSON.stringify(body),
        });
      const body = (id: string) => ({ client_params: { id, group: "fleet" } });
      expect((await post("/v1/pre-reboot", body("n1"), false)).status).toBe(400);
      expect((await post("/v1/pre-reboot", { client_params: {} })).status).toBe(400);
      expect((await post("/v1/pre-reboot", body("n1"))).status).toBe(200);
      expect((await post("/v1/pre-reboot", body("n1"))).status).toBe(200);
      const full = await post("/v1/pre-reboot", { client_params: { node_uuid: "n2", group: "fleet" } });
      expect(full.status).toBe(409);
      expect(await full.json()).toEqual({ kind: "failed_lock", value: "semaphore is at 0" });
      expect((await run(["-group", "fleet", "status"], env)).out).toBe("Available: 0\nMax: 1\n\nMACHINE ID\nn1\n");
      expect((await post("/v1/steady-state", body("n1"))).status).toBe(200);
      expect((await post("/v1/steady-state", body("n1"))).status).toBe(200);
      expect((await post("/v1/pre-reboot", { client_params: { node_uuid: "n2", group: "fleet" } })).status).toBe(200);
      // Zincati's "default" group is locksmith's default semaphore.
      expect((await post("/v1/pre-reboot", { client_params: { id: "z", group: "default" } })).status).toBe(200);
      expect((await run(["status"], env)).out).toBe("Available: 0\nMax: 1\n\nMACHINE ID\nz\n");
      expect((await post("/v1/steady-state", { client_params: { id: "z", group: "default" } })).status).toBe(200);
    });
  });
}

describe("send-need-reboot and the daemon's refusals", () => {
  test("send-need-reboot reaches the engine's subscribers, and serves the status itself when no engine runs", async () => {
    const sock = join(dir, "ue.sock");
    const srv = new StatusServer(sock, IDLE);
    await srv.start();
    const ac = new AbortController();
    const seen: string[] = [];
    const sub = (async () => {
      for await (const s of subscribe(sock, { signal: ac.signal })) {
        seen.push(s.current_operation);
        if (seen.length === 2) ac.abort();
      }
    })();
    expect((await run(["send-need-reboot"], { UPDATE_ENGINE_CONTROL_SOCKET: sock })).code).toBe(0);
    await sub;
    await srv.close();
    expect(seen).toEqual([Operation.Idle, Operation.UpdatedNeedReboot]);

    const lone = join(dir, "lone.sock");
    const p = Bun.spawn([...LOCKSMITH, "--update-socket", lone, "send-need-reboot"], { env: { ...process.env, ...NO_BUS }, stdout: "ignore", stderr: "ignore" });
    const ac2 = new AbortController();
    let got = "";
    for await (const s of subscribe(lone, { signal: ac2.signal, backoffMinMs: 20, backoffMaxMs: 50 })) {
      got = s.current_operation;
      ac2.abort();
    }
    expect(got).toBe(Operation.UpdatedNeedReboot);
    expect(await p.exited).toBe(0);
  });

  test("strategy off exits 0; a bad window exits 1; an unknown strategy exits 1 once a reboot is needed", async () => {
    const state = join(dir, "state");
    expect((await run(["daemon", "--state-file", state, "--machine-id", "x"], { REBOOT_STRATEGY: "off" })).code).toBe(0);
    const w = await run(["daemon", "--state-file", state, "--machine-id", "x"], { REBOOT_STRATEGY: "reboot", LOCKSMITHD_REBOOT_WINDOW_START: "Thursday 4:00", LOCKSMITHD_REBOOT_WINDOW_LENGTH: "1h" });
    expect(w.code).toBe(1);
    expect(w.err).toContain('Error parsing reboot window: unable to parse start: invalid day of week "Thursday"');
    const half = await run(["daemon", "--state-file", state, "--machine-id", "x"], { REBOOT_STRATEGY: "reboot", REBOOT_WINDOW_START: "4:00" });
    expect(half.code).toBe(1);
    expect(half.err).toContain("either both or neither");

    const sock = join(dir, "ue2.sock");
    const srv = new StatusServer(sock, { ...IDLE, current_operation: Operation.UpdatedNeedReboot });
    await srv.start();
    const u = await run(["daemon", "--state-file", state, "--machine-id", "x", "--update-socket", sock], { REBOOT_STRATEGY: "best-effort" });
    await srv.close();
    expect(u.code).toBe(1);
    expect(u.err).toContain('unknown strategy: "best-effort"');
    expect(u.err).toContain('CurrentOperation="UPDATE_STATUS_UPDATED_NEED_REBOOT"');
  });
});

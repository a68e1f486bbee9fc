// The Engine in-process, without a network: Omaha answers come from a fake fetch and the payload
// "installs" through a fake installer, on a real small disk image. Covers what the end-to-end tests
// cannot reach quickly: the per-payload download backoff (3/9 with code 40), the resumed-download
// flag, a missing disk (code 7), and the pure/I-O split (effects performed in order).
import { afterAll, describe, expect, test } from "bun:test";
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { initDisk, LAYOUTS, readDisk } from "../../internal/gpt/index.ts";
import { buildResponse, ErrorFlag, parseRequest, type ParsedApp } from "../../internal/omaha/index.ts";
import { defaultPaths, type HostConfig } from "../../internal/update/conf.ts";
import { Engine, type InstallRequest } from "../../internal/update/engine.ts";
import { seededRand } from "../../internal/random/random.ts";
import type { Status } from "../../internal/update/status.ts";
import { createConsola } from "consola";
import { cleanup, tempDir } from "../helpers/procs.ts";

// The engine logs a line per fact; the assertions here are on what it sent and did.
const quiet = createConsola({ level: -999 });

const dir = tempDir("coreos-ue-engine-");
const engines: Engine[] = [];
afterAll(async () => {
  for (const e of engines) await e.stop();
  cleanup(dir);
});

const HOST: HostConfig = {
  server: "http://omaha.test/v1/update/",
  group: "stable",
  machineAlias: "",
  downloadUser: "",
  downloadPassword: "",
  version: "1.0.0",
  board: "amd64-usr",
  appId: "{e96281a6-d1af-4bde-9a0a-97b76e56dc57}",
  oem: "",
  oemVersion: "",
  machineId: "m",
  bootId: "{b}",
  arch: "x86_64",
  devMode: false,
};

const UPDATE = (backoff: boolean) =>
  buildResponse({
    server: "t",
    apps: [
      {
        appid: HOST.appId,
        status: "ok",
        ping: true,
        events: 1,
        updatecheck: {
          status: "ok",
          codebases: ["http://a/", "http://b/"],
          version: "2.0.0",
          packages: [{ name: "p.gz", hash: "", size: 100, required: true }],
          postinstall: { sha256: "c2hh", disablePayloadBackoff: !backoff },
        },
      },
    ],
  });

interface Harness {
  engine: Engine;
  requests: ParsedApp[];
  installs: InstallRequest[];
  statuses: Status[];
  disk: string;
  root: string;
  /** Until the engine is idle again after a check. */
  attempt(): Promise<void>;
}

let n = 0;
function harness(o: {
  reply: () => string;
  install: (r: InstallRequest) => Promise<unknown>;
  disk?: boolean;
  host?: Partial<HostConfig>;
  now?: () => number;
  log?: ReturnType<typeof createConsola>;
}): Harness {
  const root = join(dir, `m${n++}`);
  mkdirSync(root, { recursive: true });
  const disk = join(root, "disk.img");
  initDisk(disk, { bytes: 64 * 1024 * 1024, sizes: LAYOUTS.small });
  const requests: ParsedApp[] = [];
  const installs: InstallRequest[] = [];
  const statuses: Status[] = [];
  const fakeFetch = (async (_url: string, init: RequestInit) => {
    const r = parseRequest(String(init.body));
    if (!r.ok) throw new Error(r.error);
    requests.push(r.request.apps[0]!);
    return new Response(r.request.apps[0]!.updatecheck ? o.reply() : buildResponse({ server: "t", apps: [{ appid: HOST.appId, status: "ok", events: 1 }] }));
  }) as unknown as typeof fetch;
  const engine = new Engine({
    host: { ...HOST, ...o.host },
    paths: defaultPaths(root),
    disk: o.disk === false ? null : disk,
    usr: { number: 3 },
    install: async (r) => {
      installs.push(r);
      return o.install(r);
    },
    rand: seededRand(1),
    intervalScale: 1,
    markGoodDelayMs: 3_600_000,
    periodicChecks: false,
    fetch: fakeFetch,
    now: o.now,
    log: o.log ?? quiet,
  });
  engine.onStatus((s) => statuses.push(s));
  engines.push(engine);
  return {
    engine,
    requests,
    installs,
    statuses,
    disk,
    root,
    async attempt() {
      const from = statuses.length;
      await engine.attemptUpdate();
      for (let i = 0; i < 500; i++) {
        const done = statuses.slice(from).some((s) => s.current_operation === "UPDATE_STATUS_IDLE" || s.current_operation === "UPDATE_STATUS_UPDATED_NEED_REBOOT");
        if (done) {
          await engine.settled();
          return;
        }
        await Bun.sleep(5);
      }
      throw new Error("attempt did not end");
    },
  };
}

const events = (h: Harness) => h.requests.map((a) => a.events.map((e) => `${e.type}/${e.result}${e.errorCode !== undefined ? `/${e.errorCode}` : ""}`).join(","));

describe("Engine", () => {
  test("success: installs onto USR-B, switches, and reports 13/1, 14/1, 3/1", async () => {
    const h = harness({ reply: () => UPDATE(false), install: async (r) => r.onProgress(100, 100) });
    await h.attempt();
    expect(events(h)).toEqual(["3/2", "13/1", "14/1", "3/1"]);
    const t = readDisk(h.disk);
    const b = t.partitions.find((p) => p.number === 4)!;
    expect(h.installs[0]).toMatchObject({ url: "http://a/p.gz", size: 100, sha256Base64: "c2hh", target: { path: h.disk, offset: b.firstLba * 512, length: (b.lastLba - b.firstLba + 1) * 512 } });
    expect([b.priority, b.tries, b.successful]).toEqual([2, 1, false]);
    expect(h.statuses.map((s) => s.current_operation.replace("UPDATE_STATUS_", ""))).toEqual([
      "CHECKING_FOR_UPDATE",
      "UPDATE_AVAILABLE",
      "DOWNLOADING",
      "FINALIZING",
      "UPDATED_NEED_REBOOT",
    ]);
  });

  test("every URL failing starts a payload backoff: the next check is deferred with 3/9 code 40", async () => {
    let now = 1_700_000_000;
    const h = harness({ reply: () => UPDATE(true), install: async () => Promise.reject(Object.assign(new Error("bad hash"), { code: 10 })), now: () => now });
    await h.attempt();
    await h.attempt();
    expect(h.installs.map((i) => i.url)).toEqual(["http://a/p.gz", "http://b/p.gz"]);
    await h.attempt();
    expect(events(h)).toEqual([
      "3/2",
      "13/1",
      `3/0/${10 | ErrorFlag.TestOmahaUrl}`,
      "3/2",
      "13/1",
      `3/0/${10 | ErrorFlag.TestOmahaUrl}`,
      "3/2",
      `3/9/${40 | ErrorFlag.TestOmahaUrl}`,
    ]);
    expect(h.installs).toHaveLength(2);
    // A day and a half later the backoff (1 day ± 6 h) is over.
    now += 36 * 3600;
    await h.attempt();
    expect(h.installs).toHaveLength(3);
  });

  test("a failure after resuming a download carries the resumed flag", async () => {
    let calls = 0;
    const h = harness({
      reply: () => UPDATE(false),
      install: async (r) => {
        calls++;
        // The first try leaves resume state behind, as the payload module does after a broken transfer.
        mkdirSync(r.stateDir, { recursive: true });
        writeFileSync(join(r.stateDir, "state"), "x");
        throw Object.assign(new Error("connection reset"), { code: 9 });
      },
    });
    await h.attempt();
    await h.attempt();
    expect(calls).toBe(2);
    expect(events(h).filter((e) => e.startsWith("3/0"))).toEqual([`3/0/${9 | ErrorFlag.TestOmahaUrl}`, `3/0/${9 | ErrorFlag.TestOmahaUrl | ErrorFlag.Resumed}`]);
  });

  test("an effect that throws (a pref that cannot be written) ends the attempt with error 1, not a stuck state", async () => {
    const h = harness({ reply: () => UPDATE(false), install: async () => undefined });
    // A directory where the full-response pref goes: the rename over it fails.
    mkdirSync(join(defaultPaths(h.root).prefsDir, "full-response", "x"), { recursive: true });
    await h.attempt();
    expect(h.installs).toHaveLength(0);
    expect(events(h)).toEqual(["3/2", `3/0/${1 | ErrorFlag.TestOmahaUrl}`]);
    expect(h.engine.status.current_operation).toBe("UPDATE_STATUS_IDLE");
  });

  test("DOWNLOAD_USER/PASSWORD go to the payload server as basic auth, never into the log", async () => {
    const lines: string[] = [];
    const log = createConsola({ level: 5, reporters: [{ log: (l) => void lines.push(l.args.join(" ")) }] });
    const h = harness({
      reply: () => UPDATE(false),
      install: async (r) => Promise.reject(Object.assign(new Error(`server answered 404 Not Found for ${r.url}`), { code: 2404 })),
      host: { downloadUser: "u", downloadPassword: "s3cr3t pw" },
      log,
    });
    await h.attempt();
    expect(h.installs[0]!.url).toBe("http://a/p.gz");
    expect(h.installs[0]!.headers).toEqual({ Authorization: `Basic ${btoa("u:s3cr3t pw")}` });
    expect(lines.some((l) => l.includes("404 Not Found for http://a/p.gz"))).toBe(true);
    expect(lines.filter((l) => l.includes("s3cr3t"))).toEqual([]);
  });

  test("a failed switch is PostinstallRunnerError and takes the previous-version record back", async () => {
    const h = harness({
      reply: () => UPDATE(false),
      // Both GPT copies destroyed while "installing": the switch cannot read the table.
      install: async (r) => {
        const fd = openSync(r.target.path, "r+");
        const size = fstatSync(fd).size;
        writeSync(fd, new Uint8Array(34 * 512), 0, 34 * 512, 0);
        writeSync(fd, new Uint8Array(33 * 512), 0, 33 * 512, size - 33 * 512);
        closeSync(fd);
      },
    });
    await h.attempt();
    expect(events(h)).toEqual(["3/2", "13/1", "14/1", `3/0/${5 | ErrorFlag.TestOmahaUrl}`]);
    expect(readFileSync(join(defaultPaths(h.root).prefsDir, "previous-version"), "utf8")).toBe("");
    expect(existsSync(defaultPaths(h.root).rebootMarker)).toBe(false);
  });

  test("no known disk: InstallDeviceOpenError, nothing installed", async () => {
    const h = harness({ reply: () => UPDATE(false), install: async () => undefined, disk: false });
    await h.attempt();
    expect(h.installs).toHaveLength(0);
    expect(events(h)).toEqual(["3/2", "13/1", `3/0/${7 | ErrorFlag.TestOmahaUrl}`]);
  });

  test("a test image's codes carry TestImageFlag; the production server's none of the URL flag", async () => {
    const h = harness({ reply: () => "<oops", install: async () => undefined, host: { devMode: true, server: "https://public.update.core-os.net/v1/update/" } });
    await h.attempt();
    expect(events(h)).toEqual(["3/2", `3/0/${31 | ErrorFlag.TestImage}`]);
  });

  test("the update check carries the aleph version and the machine; no update leaves IDLE with a check time", async () => {
    const h = harness({ reply: () => buildResponse({ server: "t", apps: [{ appid: HOST.appId, status: "ok", updatecheck: { status: "noupdate" } }] }), install: async () => undefined });
    h.engine.start();
    await h.attempt();
    expect(h.requests[0]).toMatchObject({ version: "1.0.0", alephversion: "1.0.0", machineid: "m", bootid: "{b}", board: "amd64-usr", delta_okay: false });
    expect(h.statuses.at(-1)).toMatchObject({ current_operation: "UPDATE_STATUS_IDLE", new_version: "0.0.0" });
    expect(h.statuses.at(-1)!.last_checked_time).toBeGreaterThan(0);
  });
});

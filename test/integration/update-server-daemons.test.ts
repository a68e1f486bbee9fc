// The rollout with our real update_engine daemons (`coreos update-engine daemon`, each with its own
// root, machine id and disk image, checking on their own schedule with --interval-scale) against
// the real server process: 20 machines in a group limited to 2 updates per period get the signed
// payload into USR-B, never more than 2 grants per period by the server's clock. Then safe mode:
// daemons that cannot verify the payload (wrong key) fail as the canary reports it (3/0, code 18
// with the non-production-server flag) and the group pauses with nobody else granted.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { decodeErrorCode } from "../../internal/omaha/index.ts";
import { cleanup, tempDir } from "../helpers/procs.ts";
import { coreos, keyPair, makeDisk, makePayload, makeRoot, setVersion, startDaemon, until, type Daemon } from "./update-engine-harness.ts";
import { admin, api, startServer, type ServerProc } from "./update-server-machine.ts";

let dir: string;
let srv: ServerProc;
const daemons: Daemon[] = [];
const keys = keyPair();

beforeAll(async () => {
  dir = tempDir("update-server-daemons-");
  srv = await startServer(join(dir, "data"));
  const payload = await makePayload(dir, keys.privatePem);
  await admin(srv, "package", "create", "--version", "2.0.0", "--file", payload.file, "--filename", "coreos_production_update.gz");
  await admin(srv, "channel", "create", "--name", "stable", "--version", "2.0.0");
});

afterAll(async () => {
  await Promise.all(daemons.map((d) => (d.proc.exitCode === null ? d.stop() : undefined)));
  await srv?.stop();
  cleanup(dir);
});

interface Host {
  id: string;
  root: string;
  disk: string;
  daemon: Daemon;
}

async function machines(track: string, n: number, publicPem: string): Promise<Host[]> {
  const hosts: Host[] = [];
  await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const id = `${track.slice(0, 4).padEnd(4, "0")}${String(i).padStart(28, "0")}`;
      const root = join(dir, `${track}-${i}`);
      makeRoot(root, { server: `${srv.url}/v1/update/`, version: "1.0.0", publicPem, group: track });
      writeFileSync(join(root, "etc/machine-id"), `${id}\n`);
      const disk = join(dir, `${track}-${i}.img`);
      makeDisk(disk);
      // First check within ~0.4 s, then every ~1.35 s (45 min ± 5 min scaled).
      const daemon = await startDaemon({ root, disk, usrPartition: "3", extra: ["--interval-scale", "0.0005", "--seed", String(i + 1)] });
      daemons.push(daemon);
      hosts.push({ id, root, disk, daemon });
    }),
  );
  return hosts;
}

type Page = { items: { instanceId: string; statusName: string }[]; total: number };

test("20 daemons, 2 updates per 1s period: all install, never more than 2 grants in any period", async () => {
  await admin(srv, "group", "create", "--name", "limited", "--channel", "stable", "--update-count", "2", "--update-interval", "1s", "--update-timeout", "1s");
  const hosts = await machines("limited", 20, keys.publicPem);
  const ids = hosts.map((x) => x.id);
  await until(
    "20 installed updates",
    async () => (await api<Page>(srv, "GET", "/api/apps/CoreOS/instances?group=limited&status=Installed&perpage=1")).total === 20,
    90_000,
  );
  const times: number[] = [];
  for (const id of ids) {
    const h = await api<{ statusName: string; createdAt: number }[]>(srv, "GET", `/api/apps/CoreOS/instances/${id}/status_history`);
    const granted = h.filter((x) => x.statusName === "UpdateGranted").map((x) => x.createdAt);
    expect(granted.length).toBeGreaterThanOrEqual(1);
    times.push(...granted);
    // The daemon's own events moved it: granted, downloading, downloaded, installed.
    expect(h.map((x) => x.statusName).reverse().slice(-4)).toEqual(["UpdateGranted", "Downloading", "Downloaded", "Installed"]);
  }
  times.sort((a, b) => a - b);
  for (const t of times) expect(times.filter((x) => x > t - 1000 && x <= t).length).toBeLessThanOrEqual(2);
  expect(times.at(-1)! - times[0]!).toBeGreaterThanOrEqual(9 * 1000);
  // Turned-away daemons were held, not failed: a refusal is no failed update.
  const failed = await api<Page>(srv, "GET", "/api/apps/CoreOS/instances?group=limited&status=Error&perpage=1");
  expect(failed.total).toBe(0);

  // One machine reboots into USR-B (the boot loader's pick), runs 2.0.0, marks itself good, and its
  // first check reports 3/2 with the previous version: the server marks the update complete.
  const h0 = hosts[0]!;
  await h0.daemon.stop();
  rmSync(join(h0.root, "var/run/update_engine_autoupdate_completed"), { force: true });
  expect((await coreos(["update-engine", "disk", "next", h0.disk])).out).toContain(`usr_device=${h0.disk},gpt4`);
  setVersion(h0.root, "2.0.0");
  daemons.push(await startDaemon({ root: h0.root, disk: h0.disk, usrPartition: "4", extra: ["--interval-scale", "0.0005", "--mark-good-delay", "100ms"] }));
  await until("the update complete", async () => (await api<{ statusName: string }>(srv, "GET", `/api/apps/CoreOS/instances/${h0.id}`)).statusName === "Complete", 30_000);
  expect(await api<{ version: string; updateInProgress: boolean }>(srv, "GET", `/api/apps/CoreOS/instances/${h0.id}`)).toMatchObject({ version: "2.0.0", updateInProgress: false });
  const ev = await api<{ type: number; result: number; previousVersion: string | null }[]>(srv, "GET", `/api/apps/CoreOS/instances/${h0.id}/events`);
  expect(ev[0]).toMatchObject({ type: 3, result: 2, previousVersion: "1.0.0" });
}, 150_000);

test("safe mode with daemons that cannot verify the payload: the canary's 3/0 pauses the group", async () => {
  await admin(srv, "group", "create", "--name", "careful", "--channel", "stable", "--update-count", "5", "--update-interval", "1m", "--safe-mode", "true");
  const wrong = keyPair();
  const ids = (await machines("careful", 3, wrong.publicPem)).map((x) => x.id);
  await until("the group paused", async () => !(await api<{ policy: { updatesEnabled: boolean } }>(srv, "GET", "/api/apps/CoreOS/groups/careful")).policy.updatesEnabled, 30_000);
  // Let the other daemons check again against the paused group.
  await Bun.sleep(3000);
  const errors = await api<Page>(srv, "GET", "/api/apps/CoreOS/instances?group=careful&status=Error");
  expect(errors.total).toBe(1);
  const canary = errors.items[0]!.instanceId;
  const hist = await api<{ statusName: string; errorCode: number | null }[]>(srv, "GET", `/api/apps/CoreOS/instances/${canary}/status_history`);
  const code = hist[0]!.errorCode!;
  expect(decodeErrorCode(code).name).toBe("DownloadPayloadPubKeyVerificationError with TestOmahaUrlFlag");
  for (const id of ids.filter((x) => x !== canary)) {
    const h = await api<{ statusName: string }[]>(srv, "GET", `/api/apps/CoreOS/instances/${id}/status_history`);
    expect(h.map((x) => x.statusName)).not.toContain("UpdateGranted");
  }
  const act = await api<{ items: { className: string }[] }>(srv, "GET", "/api/activity?app=CoreOS&group=careful&severity=4");
  expect(act.items.map((a) => a.className)).toEqual(["RolloutFailed", "InstanceUpdateFailed"]);
}, 60_000);

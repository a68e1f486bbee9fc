// Our update_engine against our update server (`coreos update-engine serve`), both as real
// processes: the server offers a package set up with the admin CLI, the daemon installs it onto
// USR-B, the server's instance history walks UpdateGranted → Downloading → Downloaded → Installed,
// and after the "reboot" the 3/2 previousversion check makes it Complete on the new version.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { cleanup, tempDir } from "../helpers/procs.ts";
import { client, coreos, keyPair, makeDisk, makePayload, makeRoot, setVersion, startDaemon, until, usr } from "./update-engine-harness.ts";
import { admin, api, startServer, type ServerProc } from "./update-server-machine.ts";

const MACHINE = "0b2c6f1f4d7e4a9c8f3e2d1c0b9a8f7e";
let dir: string;
let srv: ServerProc;

beforeAll(async () => {
  dir = tempDir("coreos-ue-server-");
  srv = await startServer(join(dir, "data"));
});

afterAll(async () => {
  await srv?.stop();
  cleanup(dir);
});

interface History {
  statusName: string;
  version: string;
}

describe("update_engine with the update server", () => {
  test("install through the server's rollout, then Complete after the reboot", async () => {
    const keys = keyPair();
    const payload = await makePayload(dir, keys.privatePem);
    await admin(srv, "package", "create", "--version", "2.0.0", "--file", payload.file);
    await admin(srv, "channel", "create", "--name", "stable", "--version", "2.0.0");
    await admin(srv, "group", "create", "--name", "prod", "--channel", "stable");
    const root = join(dir, "root");
    const disk = join(dir, "disk.img");
    makeRoot(root, { server: `${srv.url}/v1/update/`, version: "1.0.0", publicPem: keys.publicPem, group: "prod" });
    makeDisk(disk);

    const d1 = await startDaemon({ root, disk, usrPartition: "3" });
    try {
      const r = await client(["-update"], d1.socket);
      expect(r.err).toContain("Update succeeded -- reboot needed.");
    } finally {
      await d1.stop();
    }
    expect([usr(disk).b.priority, usr(disk).b.tries]).toEqual([2, 1]);
    const history = async () => (await api<History[]>(srv, "GET", `/api/apps/CoreOS/instances/${MACHINE}/status_history`)).map((h) => h.statusName);
    expect((await history())[0]).toBe("Installed");

    // The reboot into USR-B, running 2.0.0; it marks itself good and checks in.
    rmSync(join(root, "var/run/update_engine_autoupdate_completed"));
    expect((await coreos(["update-engine", "disk", "next", disk])).out).toContain("gpt4");
    setVersion(root, "2.0.0");
    const d2 = await startDaemon({ root, disk, usrPartition: "4", extra: ["--mark-good-delay", "0s"] });
    try {
      await until("mark-good", () => usr(disk).b.successful);
      const r = await client(["-update"], d2.socket);
      expect(r.err).toContain("No update available.");
    } finally {
      await d2.stop();
    }
    // Newest first: the whole walk of §5.1.
    expect((await history()).reverse()).toEqual(["Undefined", "UpdateGranted", "Downloading", "Downloaded", "Installed", "Complete"]);
    const stats = await api<{ total: number; onTarget: number; statuses: Record<string, number> }>(srv, "GET", "/api/apps/CoreOS/groups/prod/stats");
    expect(stats).toMatchObject({ total: 1, onTarget: 1, statuses: { Complete: 1 } });
  }, 60000);
});

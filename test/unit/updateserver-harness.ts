// An update server in the test process: a temp data dir, a hand-driven clock, requests straight
// into its fetch handler (no sockets), and Omaha documents built the way update_engine builds them.
import { buildRequest, COREOS_APP_ID, type OmahaEvent, type RequestBody } from "../../internal/omaha/index.ts";
import { createUpdateServer, type UpdateServer } from "../../internal/updateserver/server.ts";
import { cleanup, tempDir } from "../helpers/procs.ts";

export const BASE = "http://updates.test";

export interface Harness {
  srv: UpdateServer;
  dir: string;
  token: string;
  now: { t: number };
  fetch(path: string, init?: RequestInit): Promise<Response>;
  api<T = unknown>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }>;
  omaha(xml: string): Promise<{ status: number; text: string }>;
  close(): Promise<void>;
}

/** Monday 2026-11-23 10:00 UTC: inside office hours in UTC. */
export const MONDAY_10_UTC = Date.UTC(2026, 10, 23, 10, 0, 0);

export function harness(start = MONDAY_10_UTC): Harness {
  const dir = tempDir("updateserver-");
  const now = { t: start };
  const srv = createUpdateServer({ dataDir: dir, clock: () => now.t });
  const token = srv.firstToken!;
  const fetchIt = async (path: string, init: RequestInit = {}) => srv.fetch(new Request(`${BASE}${path}`, init), "10.0.0.7");
  return {
    srv,
    dir,
    token,
    now,
    fetch: fetchIt,
    async api<T>(method: string, path: string, body?: unknown) {
      const r = await fetchIt(path, {
        method,
        headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await r.text();
      return { status: r.status, body: (text ? JSON.parse(text) : null) as T };
    },
    async omaha(xml: string) {
      const r = await fetchIt("/v1/update/", { method: "POST", headers: { "Content-Type": "text/xml" }, body: xml });
      return { status: r.status, text: await r.text() };
    },
    async close() {
      await srv.close();
      cleanup(dir);
    },
  };
}

export interface MachineOpts {
  id: string;
  version?: string;
  track?: string;
  appid?: string;
  board?: string;
  alias?: string;
}

/** A request document from a machine, exactly as update_engine writes it. */
export function request(m: MachineOpts, body: RequestBody): string {
  return buildRequest(
    {
      updaterVersion: "update_engine-0.4.10",
      interactive: false,
      os: { version: "Chateau", platform: "CoreOS", sp: `${m.version ?? "4152.2.0"}_x86_64` },
      app: {
        appid: m.appid ?? COREOS_APP_ID,
        version: m.version ?? "4152.2.0",
        track: m.track ?? "stable",
        bootid: "{3f0c1d1e-8a53-4a55-9a5e-4d2b8c1e7a10}",
        oem: "qemu",
        oemversion: "",
        alephversion: "3975.2.1",
        machineid: m.id,
        machinealias: m.alias ?? "",
        lang: "en-US",
        board: m.board ?? "amd64-usr",
        hardware_class: "",
        delta_okay: false,
      },
    },
    body,
  );
}

export const check = (m: MachineOpts, previousVersion = ""): string =>
  request(m, { kind: "updatecheck", event: { type: 3, result: 2, previousVersion } });
export const event = (m: MachineOpts, e: OmahaEvent): string => request(m, { kind: "event", event: e });

/** `app@status` and `updatecheck@status` of the first app of a response. */
export function statuses(xml: string): { app: string | undefined; updatecheck: string | undefined } {
  return {
    app: /<app [^>]*status="([^"]*)"/.exec(xml)?.[1],
    updatecheck: /<updatecheck status="([^"]*)"/.exec(xml)?.[1],
  };
}

export const PAYLOAD = "flatcar-example-payload";

/** App set up as §1.7: package 4230.2.0 (the example payload, hosted), channel and group "stable". */
export async function setupStable(h: Harness, policy: Record<string, unknown> = {}): Promise<void> {
  const up = await h.fetch("/api/apps/CoreOS/packages/upload?version=4230.2.0&filename=flatcar_production_update.gz", {
    method: "POST",
    headers: { Authorization: `Bearer ${h.token}` },
    body: PAYLOAD,
  });
  if (up.status !== 201) throw new Error(`upload: ${up.status} ${await up.text()}`);
  const ch = await h.api("POST", "/api/apps/CoreOS/channels", { name: "stable", package: "4230.2.0" });
  if (ch.status !== 201) throw new Error(`channel: ${JSON.stringify(ch.body)}`);
  const g = await h.api("POST", "/api/apps/CoreOS/groups", { name: "stable", channel: "stable", policy });
  if (g.status !== 201) throw new Error(`group: ${JSON.stringify(g.body)}`);
}

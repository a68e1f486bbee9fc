// Simulated machines for the update server's process tests: each speaks Omaha exactly as
// update_engine does (internal/omaha builds the requests and reads the responses as §1.5 says),
// downloads the offered payload and checks its SHA-256, and walks §1.4's event sequence.
import { join } from "node:path";
import type { Subprocess } from "bun";
import { buildRequest, COREOS_APP_ID, interpretCheckReply, type OmahaEvent, type RequestBody } from "../../internal/omaha/index.ts";
import { BIN, endProc, freePort, waitReady } from "../helpers/procs.ts";

export const OLD = "4152.2.0";
export const NEW = "4230.2.0";

/** Everything the server acknowledged (a 2xx answer) to this machine, in order. */
export interface Acks {
  registered: boolean;
  /** Events the server answered `<event status="ok">` for. */
  events: OmahaEvent[];
  /** Update offers received (the server granted an update when it made one). */
  grants: number;
}

export class Machine {
  version: string;
  /** update_engine's prefs `previous-version`: set after an install, sent once after the reboot. */
  private previousVersion: string | null = "";
  readonly acks: Acks = { registered: false, events: [], grants: 0 };
  lastAppStatus = "";

  constructor(
    readonly server: string,
    readonly id: string,
    readonly track: string,
    version = OLD,
  ) {
    this.version = version;
  }

  private async post(body: RequestBody): Promise<{ status: number; text: string }> {
    const xml = buildRequest(
      {
        updaterVersion: "update_engine-0.4.10",
        interactive: false,
        os: { version: "Chateau", platform: "CoreOS", sp: `${this.version}_x86_64` },
        app: {
          appid: COREOS_APP_ID,
          version: this.version,
          track: this.track,
          bootid: `{${crypto.randomUUID()}}`,
          oem: "qemu",
          oemversion: "",
          alephversion: OLD,
          machineid: this.id,
          machinealias: `sim-${this.id.slice(-4)}`,
          lang: "en-US",
          board: "amd64-usr",
          hardware_class: "",
          delta_okay: false,
        },
      },
      body,
    );
    const r = await fetch(`${this.server}/v1/update/`, { method: "POST", headers: { "Content-Type": "text/xml" }, body: xml, signal: AbortSignal.timeout(10_000) });
    return { status: r.status, text: await r.text() };
  }

  async event(e: OmahaEvent): Promise<void> {
    const r = await this.post({ kind: "event", event: e });
    if (r.status !== 200) throw new Error(`event ${e.type}/${e.result}: HTTP ${r.status}`);
    this.acks.registered = true;
    this.acks.events.push(e);
  }

  /**
   * One update check (with the 3/2 event of §1.2) and, when offered, the whole update: download,
   * verify, events 13/1, 14/1, 3/1, "reboot". `fail` reports 3/0 with that code after the
   * download instead. Returns what the check came to.
   */
  async checkAndUpdate(fail?: number): Promise<"noupdate" | "updated" | "failed" | "refused"> {
    const ev: OmahaEvent = { type: 3, result: 2, previousVersion: this.previousVersion ?? "0.0.0.0" };
    const r = await this.post({ kind: "updatecheck", event: ev });
    if (r.status !== 200) throw new Error(`check: HTTP ${r.status}: ${r.text}`);
    this.acks.registered = true;
    if (!(ev.previousVersion === "" || ev.previousVersion === "0.0.0.0")) this.acks.events.push(ev);
    this.previousVersion = "";
    this.lastAppStatus = /<app [^>]*status="([^"]*)"/.exec(r.text)?.[1] ?? "";
    const o = interpretCheckReply(r.status, r.text);
    if (o.kind === "noupdate") return "noupdate";
    if (o.kind === "error") return "refused";
    this.acks.grants++;
    await this.event({ type: 13, result: 1 });
    const dl = await fetch(o.offer.urls[0]!, { signal: AbortSignal.timeout(10_000) });
    const payload = new Uint8Array(await dl.arrayBuffer());
    const sha = new Bun.CryptoHasher("sha256").update(payload).digest("base64");
    if (payload.length !== o.offer.size || sha !== o.offer.sha256) {
      await this.event({ type: 3, result: 0, errorCode: 10 }); // PayloadHashMismatchError
      return "failed";
    }
    await this.event({ type: 14, result: 1 });
    if (fail !== undefined) {
      await this.event({ type: 3, result: 0, errorCode: fail });
      return "failed";
    }
    await this.event({ type: 3, result: 1 });
    // Reboot into the new version: the next check carries previousversion=<old>.
    this.previousVersion = this.version;
    this.version = o.offer.version;
    return "updated";
  }
}

// ---- the server process ----

export interface ServerProc {
  url: string;
  port: number;
  dataDir: string;
  token: string;
  proc: Subprocess;
  stop(): Promise<void>;
  kill9(): Promise<void>;
}

export const COREOS = process.env.COREOS_CMD?.split(" ") ?? [BIN];

/** `coreos update-engine serve` on a free port (or the given one, to restart on the same URL). */
export async function startServer(dataDir: string, port = freePort(), extraArgs: string[] = []): Promise<ServerProc> {
  const url = `http://127.0.0.1:${port}`;
  const tokenFile = join(dataDir, "..", `token-${port}`);
  const proc = Bun.spawn([...COREOS, "update-engine", "serve", "--data-dir", dataDir, "--listen", url, "--token-file", tokenFile, ...extraArgs], {
    stdout: "pipe",
    stderr: process.env.TEST_VERBOSE ? "inherit" : "ignore",
  });
  await waitReady(url, proc);
  const file = Bun.file(tokenFile);
  const token = (await file.exists()) ? (await file.text()).trim() : "";
  return {
    url,
    port,
    dataDir,
    token,
    proc,
    stop: () => endProc(proc),
    kill9: () => endProc(proc, "SIGKILL"),
  };
}

/** `coreos update-engine admin` against the server; throws with its stderr on a non-zero exit. */
export async function admin(s: { url: string; token: string }, ...args: string[]): Promise<string> {
  const p = Bun.spawn([...COREOS, "update-engine", "admin", "--server", s.url, "--token", s.token, ...args], { stdout: "pipe", stderr: "pipe" });
  const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  if ((await p.exited) !== 0) throw new Error(`admin ${args.join(" ")}: exit ${p.exitCode}: ${err}`);
  return out;
}

export async function api<T>(s: { url: string; token: string }, method: string, path: string, body?: unknown): Promise<T> {
  const r = await fetch(`${s.url}${path}`, {
    method,
    headers: { Authorization: `Bearer ${s.token}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${await r.text()}`);
  return (await r.json()) as T;
}

// POST /v1/update/: the Omaha endpoint, open to machines as in the originals. A document that is
// not XML, not a <request> or not protocol 3.0 is a 400 (go-omaha's answer); an unknown app or
// group is a 200 whose app status says so (Nebraska's); neither is ever a 500.
import { buildResponse, parseRequest, type ParsedApp, type ParsedRequest, type ResponseApp, type UpdateCheckReply } from "../omaha/index.ts";
import { logger } from "../log/log.ts";
import type { Committer } from "./commit.ts";
import type { Package } from "./model.ts";
import { archOf, type AppOutcome, type AppRequest, type Rollout, type UpdateCheckOutcome } from "./rollout.ts";

const log = logger("omaha");

/** go-omaha's limit: "a request over 1M in size is certainly bogus". */
export const MAX_OMAHA_BODY = 1024 * 1024;
export const SERVER_NAME = "coreos-update-server";

export interface OmahaCounters {
  requests: number;
  badRequests: number;
  updateChecks: number;
  updatesOffered: number;
  events: number;
}

/** Caps what a client may make the server store per field. */
const clip = (s: string, n = 256): string => (s.length > n ? s.slice(0, n) : s);

export function appRequest(r: ParsedRequest, a: ParsedApp, ip: string): AppRequest {
  return {
    appId: clip(a.appid),
    version: clip(a.version, 64),
    track: clip(a.track),
    machineId: clip(a.machineid, 128),
    machineAlias: clip(a.machinealias),
    oem: clip(a.oem, 64),
    oemVersion: clip(a.oemversion, 64),
    alephVersion: clip(a.alephversion, 64),
    arch: archOf(a.board, r.os.arch),
    ip,
    ping: a.ping !== null,
    updateCheck: a.updatecheck !== null,
    events: a.events.map((e) => ({ type: e.type, result: e.result, errorCode: e.errorCode ?? null, previousVersion: e.previousVersion ?? null })),
  };
}

function offer(pkg: Package, baseUrl: () => string): UpdateCheckReply {
  const codebase = pkg.hosted ? `${baseUrl()}/payloads/${pkg.id}/` : pkg.url.endsWith("/") ? pkg.url : `${pkg.url}/`;
  return {
    status: "ok",
    codebases: [codebase],
    version: pkg.version,
    packages: [
      { name: pkg.filename, size: pkg.size, hash: pkg.hashSha1, required: true },
      ...pkg.extraFiles.map((f) => ({ name: f.name, size: f.size, hash: f.hash, hashSha256: f.hashSha256, required: false })),
    ],
    // Self-hosted: no exponential backoff between download attempts (what flatcar-update sets).
    postinstall: { sha256: pkg.hashSha256, disablePayloadBackoff: true },
  };
}

function reply(u: UpdateCheckOutcome, baseUrl: () => string): UpdateCheckReply {
  return u.status === "ok" ? offer(u.pkg, baseUrl) : { status: u.status };
}

/** `baseUrl` is asked only when a hosted payload is offered (reading req.url is not free). */
export function responseApps(outcomes: AppOutcome[], baseUrl: () => string): ResponseApp[] {
  return outcomes.map((o) => {
    const app: ResponseApp = { appid: o.appId, status: o.appStatus, ping: o.ping, events: o.events };
    if (o.updateCheck) app.updatecheck = reply(o.updateCheck, baseUrl);
    return app;
  });
}

/** The body as text, or null past `max` bytes (read as a stream when no length is declared). */
async function readCapped(req: Request, max: number): Promise<string | null> {
  const declared = req.headers.get("content-length");
  if (declared !== null) return Number(declared) > max ? null : req.text();
  if (!req.body) return "";
  const chunks: Uint8Array[] = [];
  let n = 0;
  for await (const c of req.body) {
    n += c.byteLength;
    if (n > max) return null;
    chunks.push(c);
  }
  return Buffer.concat(chunks).toString("utf8");
}

const XML_HEADERS = { "Content-Type": "text/xml; charset=utf-8" };

export async function handleOmaha(req: Request, ip: string, baseUrl: () => string, rollout: Rollout, committer: Committer, counters: OmahaCounters): Promise<Response> {
  counters.requests++;
  const body = await readCapped(req, MAX_OMAHA_BODY);
  if (body === null) {
    counters.badRequests++;
    return new Response("Bad Omaha Request: body larger than 1 MiB\n", { status: 400 });
  }
  const parsed = parseRequest(body);
  if (!parsed.ok) {
    counters.badRequests++;
    log.debug(`${ip}: refused: ${parsed.error}`);
    const msg = parsed.error.startsWith("request@protocol") ? "Omaha 3.0 Required" : "Bad Omaha Request";
    return new Response(`${msg}: ${parsed.error}\n`, { status: 400 });
  }
  const r = parsed.request;
  const apps = r.apps.map((a) => appRequest(r, a, ip));
  const outcomes = await committer.run(() => {
    const out: AppOutcome[] = [];
    for (const a of apps) {
      const o = rollout.handle(a);
      out.push(o);
      if (o.stop) break;
    }
    return out;
  });
  for (const [i, o] of outcomes.entries()) {
    if (log.level >= 4) {
      const a = apps[i]!;
      log.debug(`${a.machineId || "-"} ${a.ip} ${a.version} track=${a.track}: app ${o.appStatus}${o.updateCheck ? `, updatecheck ${o.updateCheck.status}` : ""}${a.events.length ? `, events ${a.events.map((e) => `${e.type}/${e.result}`).join(" ")}` : ""}`);
    }
    counters.events += o.events;
    if (o.updateCheck) {
      counters.updateChecks++;
      if (o.updateCheck.status === "ok") counters.updatesOffered++;
    }
  }
  return new Response(buildResponse({ server: SERVER_NAME, apps: responseApps(outcomes, baseUrl) }), { status: 200, headers: XML_HEADERS });
}

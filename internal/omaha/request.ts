// The Omaha v3 request document: built byte for byte as update_engine emits it (client side) and
// parsed and validated (server side). Spec update-engine §1.2.
import * as v from "valibot";
import { EventResult, EventType } from "./codes.ts";
import { attr, escapeAttr, parseXml, select, XmlSyntaxError, type XmlElement } from "./xml.ts";

/** Default app id of the OS (braces included, as sent). */
export const COREOS_APP_ID = "{e96281a6-d1af-4bde-9a0a-97b76e56dc57}";
/** `version`/`updaterversion` of the original's 0.4.10 release. */
export const UPDATER_VERSION = "update_engine-0.4.10";

/**
 * One `<event>`. `previousVersion` is only for the update check's 3/2 event; `errorCode` is written
 * whenever the result is not Success (0 if not given), as the original does.
 */
export interface OmahaEvent {
  type: number;
  result: number;
  errorCode?: number;
  previousVersion?: string;
}

/** The `<app>` attributes, in the order update_engine writes them. */
export interface AppParams {
  appid: string;
  version: string;
  track: string;
  /** With braces, e.g. "{3f0c…}". */
  bootid: string;
  oem: string;
  oemversion: string;
  alephversion: string;
  machineid: string;
  machinealias: string;
  lang: string;
  board: string;
  hardware_class: string;
  delta_okay: boolean;
}

export interface OsParams {
  version: string;
  platform: string;
  /** "<release version>_<uname -m>". */
  sp: string;
}

export interface RequestParams {
  /** `request@version` and `@updaterversion`. */
  updaterVersion: string;
  /** AttemptUpdate over the control API (installsource "ondemandupdate") rather than the scheduler. */
  interactive: boolean;
  os: OsParams;
  app: AppParams;
}

/** What the `<app>` element carries: an update check, a ping alone (waiting for reboot), or one event. */
export type RequestBody =
  | { kind: "updatecheck"; event: OmahaEvent }
  | { kind: "ping" }
  | { kind: "event"; event: OmahaEvent };

/**
 * The event an update check carries, from the prefs `previous-version` (null when the pref file
 * never existed): 3/0 error 44 when it equals the running version (a rollback: the update did not
 * stick), else 3/2 with the previous version ("0.0.0.0" for a missing pref, "" normally).
 */
export function checkEvent(previousVersionPref: string | null, runningVersion: string): OmahaEvent {
  if (previousVersionPref !== null && previousVersionPref !== "" && previousVersionPref === runningVersion) {
    return { type: EventType.UpdateComplete, result: EventResult.Error, errorCode: 44 };
  }
  return { type: EventType.UpdateComplete, result: EventResult.SuccessReboot, previousVersion: previousVersionPref ?? "0.0.0.0" };
}

function eventXml(e: OmahaEvent): string {
  let extra = "";
  if (e.previousVersion !== undefined) extra = ` previousversion="${escapeAttr(e.previousVersion)}"`;
  else if (e.result !== EventResult.Success) extra = ` errorcode="${e.errorCode ?? 0}"`;
  return `        <event eventtype="${e.type}" eventresult="${e.result}"${extra}></event>\n`;
}

function bodyXml(b: RequestBody): string {
  const ping = `        <ping active="1"></ping>\n`;
  switch (b.kind) {
    case "updatecheck":
      return `${ping}        <updatecheck></updatecheck>\n${eventXml(b.event)}`;
    case "ping":
      return ping;
    case "event":
      return eventXml(b.event);
  }
}

/** The request document exactly as update_engine writes it (attribute order, spacing, newlines). */
export function buildRequest(p: RequestParams, body: RequestBody): string {
  const a = p.app;
  const e = escapeAttr;
  return (
    `<?xml version="1.0" encoding="UTF-8"?>\n` +
    `<request protocol="3.0" version="${e(p.updaterVersion)}" updaterversion="${e(p.updaterVersion)}" ` +
    `installsource="${p.interactive ? "ondemandupdate" : "scheduler"}" ismachine="1">\n` +
    `    <os version="${e(p.os.version)}" platform="${e(p.os.platform)}" sp="${e(p.os.sp)}"></os>\n` +
    `    <app appid="${e(a.appid)}" version="${e(a.version)}" track="${e(a.track)}" bootid="${e(a.bootid)}" ` +
    `oem="${e(a.oem)}" oemversion="${e(a.oemversion)}" alephversion="${e(a.alephversion)}" ` +
    `machineid="${e(a.machineid)}" machinealias="${e(a.machinealias)}" lang="${e(a.lang)}" ` +
    `board="${e(a.board)}" hardware_class="${e(a.hardware_class)}" delta_okay="${a.delta_okay ? "true" : "false"}" >\n` +
    bodyXml(body) +
    `    </app>\n` +
    `</request>\n`
  );
}

// --- server side ---

const text = v.optional(v.string(), "");
// Decimal, possibly negative: a code with the dev-mode flag bit is printed negative by the original.
const int = v.pipe(
  v.string(),
  // A lone "-" passes here and fails safeInteger, as it always has.
  v.check((s) => s !== "" && /^-?[0-9]*$/.test(s), "must be a decimal integer"),
  v.transform(Number),
  v.safeInteger(),
);

const EventSchema = v.object({
  eventtype: int,
  eventresult: int,
  errorcode: v.optional(int),
  previousversion: v.optional(v.string()),
  nextversion: v.optional(v.string()),
});

const AppSchema = v.object({
  appid: v.pipe(v.string("app without appid"), v.nonEmpty("app with an empty appid")),
  version: text,
  track: text,
  from_track: text,
  bootid: text,
  oem: text,
  oemversion: text,
  alephversion: text,
  machineid: text,
  machinealias: text,
  lang: text,
  board: text,
  hardware_class: text,
  delta_okay: v.pipe(text, v.transform((s) => s === "true")),
});

const RequestSchema = v.object({
  protocol: v.literal("3.0", 'protocol must be "3.0"'),
  version: text,
  updaterversion: text,
  installsource: text,
  ismachine: text,
  requestid: text,
  sessionid: text,
  userid: text,
  testsource: text,
});

const OsSchema = v.object({ version: text, platform: text, sp: text, arch: text });
const PingSchema = v.object({ active: text, a: text, r: text });
const UpdateCheckSchema = v.object({ targetversionprefix: text });

export type ParsedEvent = OmahaEvent & { nextVersion?: string };
export type ParsedApp = v.InferOutput<typeof AppSchema> & {
  /** null when the app sent no `<ping>`. */
  ping: v.InferOutput<typeof PingSchema> | null;
  /** null when the app sent no `<updatecheck>` (a ping or event request). */
  updatecheck: v.InferOutput<typeof UpdateCheckSchema> | null;
  events: ParsedEvent[];
};
export type ParsedRequest = v.InferOutput<typeof RequestSchema> & {
  os: v.InferOutput<typeof OsSchema>;
  apps: ParsedApp[];
};

export type ParseRequestResult = { ok: true; request: ParsedRequest } | { ok: false; error: string };

function check<S extends v.GenericSchema>(schema: S, e: XmlElement, where: string): v.InferOutput<S> {
  const r = v.safeParse(schema, e.attrs);
  if (r.success) return r.output;
  const issue = r.issues[0];
  const key = issue.path?.map((p) => String(p.key)).join(".");
  throw new RequestInvalid(`${where}${key ? `@${key}` : ""}: ${issue.message}`);
}

class RequestInvalid extends Error {}

/** A request document as a server receives it: well-formed, `<request protocol="3.0">`, sane attributes. */
export function parseRequest(body: string): ParseRequestResult {
  let root: XmlElement;
  try {
    root = parseXml(body);
  } catch (e) {
    if (e instanceof XmlSyntaxError) return { ok: false, error: `malformed XML: ${e.message}` };
    throw e;
  }
  if (root.name !== "request") return { ok: false, error: `document element is <${root.name}>, not <request>` };
  try {
    const req = check(RequestSchema, root, "request");
    const osEl = select(root, ["request", "os"])[0];
    const os = osEl ? check(OsSchema, osEl, "os") : { version: "", platform: "", sp: "", arch: "" };
    const apps = select(root, ["request", "app"]).map((appEl, i): ParsedApp => {
      const where = `app[${i}]`;
      const ping = select(appEl, ["app", "ping"])[0];
      const uc = select(appEl, ["app", "updatecheck"])[0];
      return {
        ...check(AppSchema, appEl, where),
        ping: ping ? check(PingSchema, ping, `${where}/ping`) : null,
        updatecheck: uc ? check(UpdateCheckSchema, uc, `${where}/updatecheck`) : null,
        events: select(appEl, ["app", "event"]).map((ev, j) => {
          const o = check(EventSchema, ev, `${where}/event[${j}]`);
          const out: ParsedEvent = { type: o.eventtype, result: o.eventresult };
          if (o.errorcode !== undefined) out.errorCode = o.errorcode;
          if (o.previousversion !== undefined) out.previousVersion = o.previousversion;
          if (o.nextversion !== undefined) out.nextVersion = o.nextversion;
          return out;
        }),
      };
    });
    if (apps.length === 0) return { ok: false, error: "request without <app>" };
    return { ok: true, request: { ...req, os, apps } };
  } catch (e) {
    if (e instanceof RequestInvalid) return { ok: false, error: e.message };
    throw e;
  }
}

/** The app id without braces and lower-cased, for comparing ids sent with or without them. */
export function normalizeAppId(appid: string): string {
  return appid.replace(/^\{/, "").replace(/\}$/, "").toLowerCase();
}

/** A 3/2 event with a real previous version: the machine rebooted into an update (§1.6 step 4). */
export function isUpdatedAndRebooted(e: OmahaEvent): boolean {
  return (
    e.type === EventType.UpdateComplete &&
    e.result === EventResult.SuccessReboot &&
    e.previousVersion !== undefined &&
    e.previousVersion !== "" &&
    e.previousVersion !== "0.0.0.0"
  );
}

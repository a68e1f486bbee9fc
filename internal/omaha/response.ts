// The Omaha v3 response document: built by a server (§1.6 shape, §1.5 attributes) and read by the
// client exactly as update_engine reads it (§1.5: which elements, first match only, what is an error).
import { ErrorCode, httpErrorCode } from "./codes.ts";
import { attr, escapeAttr, parseXml, select, XmlSyntaxError, type XmlElement } from "./xml.ts";

// --- server side ---

export const AppStatus = {
  Ok: "ok",
  Restricted: "restricted",
  UnknownApplication: "error-unknownApplication",
  InvalidAppId: "error-invalidAppId",
  InvalidVersion: "error-invalidVersion",
  Internal: "error-internal",
} as const;

export const UpdateCheckErrorStatus = {
  OsNotSupported: "error-osnotsupported",
  UnsupportedProtocol: "error-unsupportedProtocol",
  PluginRestrictedHost: "error-pluginRestrictedHost",
  Hash: "error-hash",
  Internal: "error-internal",
} as const;
export type UpdateCheckErrorStatus = (typeof UpdateCheckErrorStatus)[keyof typeof UpdateCheckErrorStatus];

export interface PackageEntry {
  name: string;
  /** Bytes. */
  size: number;
  /** Base64 SHA-1 by convention; update_engine ignores it. */
  hash: string;
  /** Lowercase hex SHA-256 (read by postinstall for sysext packages). */
  hashSha256?: string;
  required: boolean;
}

/** The `<action event="postinstall">` where update_engine reads its parameters. */
export interface PostinstallAction {
  /** Base64 SHA-256 of the whole payload file. */
  sha256: string;
  disablePayloadBackoff?: boolean;
  isDeltaPayload?: boolean;
  maxFailureCountPerUrl?: number;
}

export type UpdateCheckReply =
  | { status: "noupdate"; pollInterval?: number }
  | {
      status: "ok";
      pollInterval?: number;
      /** Download bases; each should end with "/" (CoreOS appends the package name verbatim). */
      codebases: string[];
      version: string;
      /** The first is the payload update_engine downloads; the rest are extras (sysext images). */
      packages: [PackageEntry, ...PackageEntry[]];
      postinstall: PostinstallAction;
    }
  | { status: UpdateCheckErrorStatus; pollInterval?: number };

export interface ResponseApp {
  appid: string;
  /** "ok" or one of AppStatus / Nebraska's own error strings. */
  status: string;
  /** Echo `<ping status="ok">` (the request had a ping). */
  ping?: boolean;
  /** How many `<event status="ok">` to echo (one per request event). */
  events?: number;
  /** Only when the request had an `<updatecheck>`. */
  updatecheck?: UpdateCheckReply;
}

export interface ResponseDoc {
  server: string;
  elapsedSeconds?: number;
  apps: ResponseApp[];
}

function updatecheckXml(u: UpdateCheckReply): string {
  const poll = u.pollInterval !== undefined ? ` PollInterval="${u.pollInterval}"` : "";
  if (u.status !== "ok") return `    <updatecheck status="${escapeAttr(u.status)}"${poll}></updatecheck>\n`;
  const e = escapeAttr;
  const urls = u.codebases.map((c) => `<url codebase="${e(c)}"></url>`).join("");
  const pkgs = u.packages
    .map(
      (p) =>
        `          <package name="${e(p.name)}" hash="${e(p.hash)}"` +
        (p.hashSha256 !== undefined ? ` hash_sha256="${e(p.hashSha256)}"` : "") +
        ` size="${p.size}" required="${p.required ? "true" : "false"}"></package>\n`,
    )
    .join("");
  const a = u.postinstall;
  const opts =
    (a.isDeltaPayload ? ` IsDeltaPayload="true"` : "") +
    (a.disablePayloadBackoff ? ` DisablePayloadBackoff="true"` : "") +
    (a.maxFailureCountPerUrl !== undefined ? ` MaxFailureCountPerUrl="${a.maxFailureCountPerUrl}"` : "");
  return (
    `    <updatecheck status="ok"${poll}>\n` +
    `      <urls>${urls}</urls>\n` +
    `      <manifest version="${e(u.version)}">\n` +
    `        <packages>\n${pkgs}        </packages>\n` +
    `        <actions>\n          <action event="postinstall" sha256="${e(a.sha256)}"${opts}></action>\n        </actions>\n` +
    `      </manifest>\n` +
    `    </updatecheck>\n`
  );
}

/** A response document in the shape of §1.6/§1.7 (ping, updatecheck, then events, per app). */
export function buildResponse(doc: ResponseDoc): string {
  const apps = doc.apps
    .map(
      (a) =>
        `  <app appid="${escapeAttr(a.appid)}" status="${escapeAttr(a.status)}">\n` +
        (a.ping ? `    <ping status="ok"></ping>\n` : "") +
        (a.updatecheck ? updatecheckXml(a.updatecheck) : "") +
        `    <event status="ok"></event>\n`.repeat(a.events ?? 0) +
        `  </app>\n`,
    )
    .join("");
  return (
    `<?xml version="1.0" encoding="UTF-8"?>\n` +
    `<response protocol="3.0" server="${escapeAttr(doc.server)}">\n` +
    `  <daystart elapsed_seconds="${doc.elapsedSeconds ?? 0}"></daystart>\n` +
    apps +
    `</response>\n`
  );
}

// --- client side ---

export interface PackageInfo {
  name: string;
  size: number;
  hash: string;
  hashSha256: string;
}

export interface UpdateOffer {
  /** `manifest@version` (informational). */
  version: string;
  /** Full payload URLs: each codebase (+ "/" if missing) + the first package's name. */
  urls: string[];
  packageName: string;
  size: number;
  /** Base64 SHA-256 of the payload. */
  sha256: string;
  isDeltaPayload: boolean;
  disablePayloadBackoff: boolean;
  maxFailureCountPerUrl: number;
  /** Every `<package>` (the first is the payload), for postinstall's extras. */
  packages: PackageInfo[];
}

/** What one update check came to; `error.code` is the ActionExitCode update_engine would report. */
export type CheckOutcome =
  | { kind: "noupdate"; pollInterval: number }
  | { kind: "update"; pollInterval: number; offer: UpdateOffer }
  | { kind: "error"; code: number; message: string; pollInterval: number };

export const DEFAULT_MAX_FAILURE_COUNT_PER_URL = 10;

/** base::StringToInt: an optional sign and decimal digits, nothing else. */
function strictInt(s: string): number | undefined {
  const body = s.startsWith("-") || s.startsWith("+") ? s.slice(1) : s;
  if (body === "" || ![...body].every((c) => c >= "0" && c <= "9")) return undefined;
  const n = Number(s);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** sscanf("%" PRIi64): leading space, sign, then 0x.. hex, 0.. octal or decimal, as far as digits go; 0 if none. */
function scanInt(s: string): number {
  let i = 0;
  while (i < s.length && " \t\n\v\f\r".includes(s[i]!)) i++;
  let sign = 1;
  if (s[i] === "-" || s[i] === "+") sign = s[i++] === "-" ? -1 : 1;
  let radix = 10;
  if (s[i] === "0" && (s[i + 1] === "x" || s[i + 1] === "X") && /[0-9a-fA-F]/.test(s[i + 2] ?? "")) {
    radix = 16;
    i += 2;
  } else if (s[i] === "0") radix = 8;
  const digits = "0123456789abcdef".slice(0, radix);
  let n = 0;
  while (i < s.length && digits.includes(s[i]!.toLowerCase())) n = n * radix + digits.indexOf(s[i++]!.toLowerCase());
  return sign * n;
}

const invalid = (message: string, pollInterval = 0): CheckOutcome => ({ kind: "error", code: ErrorCode.OmahaResponseInvalid, message, pollInterval });

/** The body of a 2xx reply to an update check, read as update_engine reads it. */
export function parseResponse(body: string): CheckOutcome {
  if (body.length === 0) return { kind: "error", code: ErrorCode.OmahaRequestEmptyResponseError, message: "empty response", pollInterval: 0 };
  let root: XmlElement;
  try {
    root = parseXml(body);
  } catch (e) {
    if (!(e instanceof XmlSyntaxError)) throw e;
    return { kind: "error", code: ErrorCode.OmahaRequestXMLParseError, message: `response not valid XML: ${e.message}`, pollInterval: 0 };
  }
  const at = (...path: string[]) => select(root, ["response", "app", "updatecheck", ...path]);
  const uc = at()[0];
  if (!uc) return invalid("no /response/app/updatecheck");
  // Read before the status: a server may slow clients down in any answer.
  const pollInterval = strictInt(attr(uc, "PollInterval")) ?? 0;
  if (!("status" in uc.attrs)) return invalid("updatecheck without status", pollInterval);
  const status = attr(uc, "status");
  if (status === "noupdate") return { kind: "noupdate", pollInterval };
  if (status !== "ok") return invalid(`unknown updatecheck status "${status}"`, pollInterval);

  const manifest = at("manifest")[0];
  if (!manifest) return invalid("no manifest", pollInterval);
  const urlEls = at("urls", "url");
  if (urlEls.length === 0) return invalid("no urls", pollInterval);
  const codebases = urlEls.map((u) => attr(u, "codebase"));
  if (codebases.some((c) => c === "")) return invalid("url with an empty codebase", pollInterval);

  const pkgEls = at("manifest", "packages", "package");
  const pkg = pkgEls[0];
  if (!pkg) return invalid("no package", pollInterval);
  const packageName = attr(pkg, "name");
  if (packageName === "") return invalid("package with an empty name", pollInterval);
  const size = scanInt(attr(pkg, "size"));
  if (size <= 0) return invalid(`invalid payload size "${attr(pkg, "size")}"`, pollInterval);

  const actions = at("manifest", "actions", "action");
  if (actions.length === 0) return invalid("no actions", pollInterval);
  const pie = actions.find((a) => attr(a, "event") === "postinstall");
  if (!pie) return invalid("no postinstall action", pollInterval);
  const sha256 = attr(pie, "sha256");
  if (sha256 === "") return invalid("postinstall action with an empty sha256", pollInterval);
  const max = attr(pie, "MaxFailureCountPerUrl");
  const maxN = max !== "" && [...max].every((c) => c >= "0" && c <= "9") ? Number(max) : DEFAULT_MAX_FAILURE_COUNT_PER_URL;

  return {
    kind: "update",
    pollInterval,
    offer: {
      version: attr(manifest, "version"),
      urls: codebases.map((c) => (c.endsWith("/") ? c : `${c}/`) + packageName),
      packageName,
      size,
      sha256,
      isDeltaPayload: attr(pie, "IsDeltaPayload") === "true",
      disablePayloadBackoff: attr(pie, "DisablePayloadBackoff") === "true",
      maxFailureCountPerUrl: maxN,
      packages: pkgEls.map((p) => ({ name: attr(p, "name"), size: scanInt(attr(p, "size")), hash: attr(p, "hash"), hashSha256: attr(p, "hash_sha256") })),
    },
  };
}

/** The whole HTTP reply to an update check: a non-2xx status is 2000+status, else the body decides. */
export function interpretCheckReply(httpStatus: number, body: string): CheckOutcome {
  if (httpStatus < 200 || httpStatus > 299) {
    return { kind: "error", code: httpErrorCode(httpStatus), message: `HTTP ${httpStatus}`, pollInterval: 0 };
  }
  return parseResponse(body);
}

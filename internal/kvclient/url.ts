// URLs built the way etcd's Go client builds them (net/url + pathutil), so requests, and the
// curl lines etcdctl --debug prints, come out byte for byte the same.

/**
 * Normalises one endpoint as etcdctl's getEndpoints does: no scheme means http. Throws with Go's
 * url.Parse message for input Go rejects ("127.0.0.1:2379" has a colon in its first segment).
 * A scheme other than http/https is kept; requests to it then fail with Go's
 * "unsupported protocol scheme" error.
 */
export function normaliseEndpoint(raw: string): string {
  const scheme = goScheme(raw);
  if (scheme === null) throw new Error(`parse ${JSON.stringify(raw)}: missing protocol scheme`);
  if (scheme === "") {
    const firstSegment = raw.split("/")[0] ?? "";
    if (!raw.startsWith("/") && firstSegment.includes(":")) {
      throw new Error(`parse ${JSON.stringify(raw)}: first path segment in URL cannot contain colon`);
    }
    return raw.startsWith("//") ? `http:${raw}` : `http://${raw}`;
  }
  if (scheme === "http" || scheme === "https") {
    try {
      new URL(raw);
    } catch {
      throw new Error(`parse ${JSON.stringify(raw)}: invalid URL`);
    }
  }
  return raw;
}

/** Go's getScheme: "" when there is none, null for a leading ':' (missing protocol scheme). */
function goScheme(raw: string): string | null {
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (/[a-zA-Z]/.test(c)) continue;
    if (/[0-9+\-.]/.test(c)) {
      if (i === 0) return "";
      continue;
    }
    if (c === ":") return i === 0 ? null : raw.slice(0, i).toLowerCase();
    return "";
  }
  return "";
}

/** The scheme of a normalised endpoint, lower-cased. */
export function schemeOf(endpoint: string): string {
  return goScheme(endpoint) ?? "";
}

/** Go's path.Clean. */
export function cleanPath(p: string): string {
  if (p === "") return ".";
  const rooted = p.startsWith("/");
  const out: string[] = [];
  for (const seg of p.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") {
      if (out.length > 0 && out[out.length - 1] !== "..") out.pop();
      else if (!rooted) out.push("..");
      continue;
    }
    out.push(seg);
  }
  const joined = out.join("/");
  if (rooted) return `/${joined}`;
  return joined === "" ? "." : joined;
}

/** etcd's pathutil.CanonicalURLPath: Clean, but a trailing slash survives. */
export function canonicalURLPath(p: string): string {
  if (p === "") return "/";
  if (!p.startsWith("/")) p = `/${p}`;
  let np = cleanPath(p);
  if (p.endsWith("/") && np !== "/") np += "/";
  return np;
}

const UNRESERVED = /[A-Za-z0-9\-_.~]/;
// encodeURIComponent leaves these five unescaped where Go escapes them.
const JS_ONLY_UNRESERVED = /[!'()*]/g;
const PATH_KEPT = /%(24|26|2B|2C|2F|3A|3B|3D|40)/g; // $&+,/:;=@

/**
 * The byte loop is Go's algorithm; encodeURIComponent plus three fix-ups gives the same bytes
 * several times faster (every escaped triplet starts with its own %, so the replacements cannot
 * straddle two). Strings it refuses (lone surrogates) take the loop, which writes them as U+FFFD.
 */
function escapeBytes(s: string, keepPathChars: boolean, spacePlus: boolean): string {
  let out: string;
  try {
    out = encodeURIComponent(s);
  } catch {
    return escapeLoop(s, keepPathChars, spacePlus);
  }
  out = out.replace(JS_ONLY_UNRESERVED, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  if (spacePlus) out = out.replaceAll("%20", "+");
  if (keepPathChars) out = out.replace(PATH_KEPT, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
  return out;
}

/** Go's byte loop itself: the fallback, and the reference the fast path is tested against. */
export function escapeLoop(s: string, keepPathChars: boolean, spacePlus: boolean): string {
  let out = "";
  for (const b of new TextEncoder().encode(s)) {
    const c = String.fromCharCode(b);
    if (b < 0x80 && (UNRESERVED.test(c) || (keepPathChars && "$&+,/:;=@".includes(c)))) out += c;
    else if (spacePlus && c === " ") out += "+";
    else out += `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** Go's url.PathEscape rules for URL.String(): sub-delims of a path stay readable. */
export function escapePath(p: string): string {
  return escapeBytes(p, true, false);
}

/** Go's url.QueryEscape. */
export function queryEscape(s: string): string {
  return escapeBytes(s, false, true);
}

/** Go's url.Values.Encode: keys sorted, each pair query-escaped. */
export function encodeQuery(params: Record<string, string>): string {
  return Object.keys(params)
    .sort()
    .map((k) => `${queryEscape(k)}=${queryEscape(params[k]!)}`)
    .join("&");
}

/** Joins an endpoint, the API prefix and a key the way client/v2's v2KeysURL does. */
export function apiURL(endpoint: string, prefix: string, key: string, query: Record<string, string> = {}): string {
  const u = splitEndpoint(endpoint);
  if (key !== "" && !key.startsWith("/")) key = `/${key}`;
  const path = canonicalURLPath(u.path + prefix + key);
  const q = encodeQuery(query);
  return `${u.origin}${escapePath(path)}${q === "" ? "" : `?${q}`}`;
}

/** Go's path.Join for the members API (no trailing slash kept). */
export function joinURL(endpoint: string, ...parts: string[]): string {
  const u = splitEndpoint(endpoint);
  return `${u.origin}${escapePath(cleanPath(["", u.path, ...parts].join("/")))}`;
}

function splitEndpoint(endpoint: string): { origin: string; path: string } {
  const m = /^([a-zA-Z][a-zA-Z0-9+\-.]*:\/\/[^/?#]*)([^?#]*)/.exec(endpoint);
  if (m) return { origin: m[1]!, path: decodeSafe(m[2]!) };
  return { origin: endpoint, path: "" };
}

function decodeSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

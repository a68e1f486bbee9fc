// Go's url.ParseQuery and Request.ParseForm, because etcd's parameter handling is defined by them:
// the first value of a repeated key counts, the urlencoded body wins over the query string,
// and a bad escape is an error whose text clients see in the 210 cause.

export type Form = Map<string, string[]>;

export class FormError extends Error {}

const HEX = /^[0-9a-fA-F]{2}$/;
const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** Go's url.QueryUnescape (`+` is a space), or with `path` its PathUnescape (`+` stays). */
export function queryUnescape(s: string, path = false): string {
  if (!s.includes("%") && (path || !s.includes("+"))) return s;
  try {
    return decodeURIComponent(path ? s : s.replaceAll("+", " "));
  } catch {
    // a bad escape (Go's error text below) or bytes that are not UTF-8 (Go keeps them; we decode them to U+FFFD)
  }
  const bytes: number[] = [];
  for (let i = 0; i < s.length; ) {
    const c = s.charCodeAt(i);
    if (c === 0x25 /* % */) {
      const hex = s.slice(i + 1, i + 3);
      if (!HEX.test(hex)) throw new FormError(`invalid URL escape "${s.slice(i, i + 3)}"`);
      bytes.push(parseInt(hex, 16));
      i += 3;
    } else if (c === 0x2b /* + */ && !path) {
      bytes.push(0x20);
      i++;
    } else {
      // Copy a run of plain characters as UTF-8.
      let j = i + 1;
      while (j < s.length && s[j] !== "%" && (path || s[j] !== "+")) j++;
      for (const b of encoder.encode(s.slice(i, j))) bytes.push(b);
      i = j;
    }
  }
  return decoder.decode(new Uint8Array(bytes));
}

/** Parses `a=1&b=2` into `into`, appending values. Like Go, it keeps going after an error and reports the first. */
export function parseQuery(query: string, into: Form = new Map()): Form {
  let firstError: FormError | undefined;
  // walked with indexOf rather than split("&"): one request's form costs no array of parts
  for (let start = 0; start <= query.length; ) {
    let end = query.indexOf("&", start);
    if (end < 0) end = query.length;
    const part = start === 0 && end === query.length ? query : query.slice(start, end);
    start = end + 1;
    if (part === "") continue;
    if (part.includes(";")) {
      firstError ??= new FormError("invalid semicolon separator in query");
      continue;
    }
    const eq = part.indexOf("=");
    try {
      const k = queryUnescape(eq === -1 ? part : part.slice(0, eq));
      const v = eq === -1 ? "" : queryUnescape(part.slice(eq + 1));
      const list = into.get(k);
      if (list) list.push(v);
      else into.set(k, [v]);
    } catch (e) {
      firstError ??= e as FormError;
    }
  }
  if (firstError) throw firstError;
  return into;
}

/** Request.ParseForm: body values (PUT/POST urlencoded) first, then the query's. */
export function parseForm(query: string, body: string | null): Form {
  const form: Form = new Map();
  if (body !== null) parseQuery(body, form);
  parseQuery(query, form);
  return form;
}

export function formValue(form: Form, key: string): string | undefined {
  return form.get(key)?.[0];
}

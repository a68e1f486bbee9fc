// The small XML layer under the Omaha documents: plain element nodes (document order kept, attributes
// decoded) from a one-pass scanner for the XML update_engine writes, or from fast-xml-parser's
// ordered output for any other document; XPath-like child steps; attribute escaping.
import { XMLParser, XMLValidator } from "fast-xml-parser";

export interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  children: XmlElement[];
}

/** Not well-formed XML (what libxml's xmlParseMemory refuses). */
export class XmlSyntaxError extends Error {}

const parser = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: "",
  parseAttributeValue: false,
  parseTagValue: false,
  trimValues: false,
  ignoreDeclaration: true,
  ignorePiTags: true,
  // Entities are decoded below in one pass: the parser's own decoding leaves character references
  // alone, and decoding those afterwards would turn "&amp;#65;" into "A".
  processEntities: false,
});

const NAMED: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

function decodeEntities(s: string): string {
  if (!s.includes("&")) return s;
  let out = "";
  let i = 0;
  while (i < s.length) {
    const amp = s.indexOf("&", i);
    if (amp === -1) {
      out += s.slice(i);
      break;
    }
    out += s.slice(i, amp);
    const semi = s.indexOf(";", amp);
    if (semi === -1) throw new XmlSyntaxError(`unterminated entity reference in "${s}"`);
    const ref = s.slice(amp + 1, semi);
    let ch: string | undefined;
    if (ref.startsWith("#x") || ref.startsWith("#X")) ch = codePoint(ref.slice(2), 16);
    else if (ref.startsWith("#")) ch = codePoint(ref.slice(1), 10);
    else ch = NAMED[ref];
    if (ch === undefined) throw new XmlSyntaxError(`undefined entity &${ref};`);
    out += ch;
    i = semi + 1;
  }
  return out;
}

function codePoint(digits: string, radix: 10 | 16): string | undefined {
  const valid = radix === 16 ? "0123456789abcdefABCDEF" : "0123456789";
  if (digits === "" || [...digits].some((c) => !valid.includes(c))) return undefined;
  const n = Number.parseInt(digits, radix);
  return n > 0 && n <= 0x10ffff ? String.fromCodePoint(n) : undefined;
}

type Ordered = Record<string, unknown>;

function toElements(items: Ordered[]): XmlElement[] {
  const out: XmlElement[] = [];
  for (const item of items) {
    const name = Object.keys(item).find((k) => k !== ":@");
    // Text, comments and CDATA carry nothing the Omaha documents use.
    if (name === undefined || name.startsWith("#") || name.startsWith("?")) continue;
    const raw = (item[":@"] ?? {}) as Record<string, string>;
    const attrs: Record<string, string> = {};
    for (const [k, val] of Object.entries(raw)) attrs[k] = decodeEntities(String(val));
    out.push({ name, attrs, children: toElements(item[name] as Ordered[]) });
  }
  return out;
}

/** The document element as fast-xml-parser (validator, then parser) reads it; XmlSyntaxError if not well-formed. */
export function parseXmlFull(text: string): XmlElement {
  const valid = XMLValidator.validate(text);
  if (valid !== true) throw new XmlSyntaxError(`${valid.err.msg} (line ${valid.err.line})`);
  let parsed: Ordered[];
  try {
    parsed = parser.parse(text) as Ordered[];
  } catch (e) {
    // The parser refuses some documents the validator passed: names such as "constructor" (against
    // prototype pollution), broken DOCTYPE internals. A refusal, never a crash (a server's 500).
    throw new XmlSyntaxError(e instanceof Error ? e.message : String(e));
  }
  const roots = toElements(parsed);
  if (roots.length !== 1) throw new XmlSyntaxError(roots.length === 0 ? "no document element" : "more than one document element");
  return roots[0]!;
}

// The fast path. fast-xml-parser passes over a document twice (XMLValidator, then the parser) and
// builds an intermediate tree: 80-100 µs of CPU for a 741-byte update check, most of the update
// server's CPU.
// What update_engine and our own builders write is a tiny, fixed subset of XML: an optional
// <?xml ...?> declaration, elements with ASCII names, attributes in " or ' quotes with entity and
// character references, self-closing tags, whitespace. scanSubset reads exactly that in one pass
// and returns what parseXmlFull would; for anything else (comments, CDATA, DOCTYPE, processing
// instructions, namespaces, references in text, CR in values, names that are Object.prototype
// properties, and every kind of malformation) it returns undefined and the real parser decides,
// so acceptance and error messages stay the real parser's. Not a general XML parser, on purpose.

const LT = 60, GT = 62, SLASH = 47, EQ = 61, AMP = 38, QUOT = 34, APOS = 39, QMARK = 63, CR = 13;

// fast-xml-parser throws on some of these and renames others: the real parser keeps that behaviour.
const PROTO_NAMES = new Set([...Object.getOwnPropertyNames(Object.prototype), "prototype"]);

function isWs(c: number): boolean {
  return c === 32 || c === 10 || c === 9 || c === CR;
}

function skipWs(s: string, i: number): number {
  while (isWs(s.charCodeAt(i))) i++;
  return i;
}

/** End of the ASCII name ([A-Za-z_][A-Za-z0-9_.-]*) starting at i; i itself if there is none. */
function nameEnd(s: string, i: number): number {
  let c = s.charCodeAt(i);
  if (!((c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95)) return i;
  do c = s.charCodeAt(++i);
  while ((c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 95 || c === 46 || c === 45);
  return i;
}

// The names last read, by a hash of length, first and last character: a server reads the same few
// dozen names in every document, and one it already holds as a string (an atom, once used as a
// property key) costs no allocation and no hashing. A collision or a new name just replaces the
// entry: fixed size, whatever arrives. Entries are copies (JSON.parse), so no slice of a document
// keeps the whole document alive.
const NAME_CACHE: (string | undefined)[] = new Array<string | undefined>(1024).fill(undefined);

/** The name from i to end, or undefined when there is none or it is one the real parser treats specially. */
function readName(s: string, i: number, end: number): string | undefined {
  const len = end - i;
  if (len === 0) return undefined;
  const slot = (len * 37 + s.charCodeAt(i) * 7 + s.charCodeAt(end - 1)) & 1023;
  const known = NAME_CACHE[slot];
  if (known !== undefined && known.length === len && s.startsWith(known, i)) return known;
  const name: string = JSON.parse(`"${s.slice(i, end)}"`);
  if (PROTO_NAMES.has(name)) return undefined;
  NAME_CACHE[slot] = name;
  return name;
}

/**
 * Reads the attributes of a tag from i (just after its name) into `attrs`. Returns the index just
 * past the tag's closing ">" (or the declaration's "?>"), negated for a self-closing "/>"; 0 when the
 * tag is outside the subset. No allocation for the flag: this runs for every tag of every request.
 */
function scanAttrs(s: string, i: number, attrs: Record<string, string>, inDeclaration: boolean): number {
  for (;;) {
    const j = skipWs(s, i);
    const c = s.charCodeAt(j);
    if (inDeclaration) {
      if (c === QMARK) return s.charCodeAt(j + 1) === GT ? j + 2 : 0;
    } else if (c === GT) return j + 1;
    else if (c === SLASH) return s.charCodeAt(j + 1) === GT ? -(j + 2) : 0;
    // Attributes are separated by whitespace.
    if (j === i) return 0;
    const e = nameEnd(s, j);
    const name = readName(s, j, e);
    if (name === undefined || Object.hasOwn(attrs, name)) return 0;
    let k = skipWs(s, e);
    if (s.charCodeAt(k) !== EQ) return 0;
    k = skipWs(s, k + 1);
    const q = s.charCodeAt(k);
    if (q !== QUOT && q !== APOS) return 0;
    let hasRef = false;
    let m = k + 1;
    for (;; m++) {
      const v = s.charCodeAt(m);
      if (v === q) break;
      // NaN past the end; < and CR (the parser turns CR LF into LF) are the real parser's business.
      if (v !== v || v === LT || v === CR || (inDeclaration && (v === QMARK || v === GT))) return 0;
      if (v === AMP) hasRef = true;
    }
    const raw = s.slice(k + 1, m);
    if (!hasRef) attrs[name] = raw;
    else {
      try {
        attrs[name] = decodeEntities(raw);
      } catch {
        return 0;
      }
    }
    i = m + 1;
  }
}

/** What parseXmlFull returns for a document in the subset above; undefined for any other text. */
export function scanSubset(s: string): XmlElement | undefined {
  let i = 0;
  if (s.startsWith("<?xml")) {
    // "<?xml-stylesheet" and the like end here: scanAttrs wants whitespace before a name.
    i = scanAttrs(s, 5, {}, true);
    if (i === 0) return undefined;
  }
  i = skipWs(s, i);
  const stack: XmlElement[] = [];
  for (;;) {
    if (s.charCodeAt(i) !== LT) return undefined;
    let closed: XmlElement | undefined;
    if (s.charCodeAt(i + 1) === SLASH) {
      const e = nameEnd(s, i + 2);
      const j = skipWs(s, e);
      if (s.charCodeAt(j) !== GT) return undefined;
      closed = stack.pop();
      if (closed === undefined || e - (i + 2) !== closed.name.length || !s.startsWith(closed.name, i + 2)) return undefined;
      i = j + 1;
    } else {
      const e = nameEnd(s, i + 1);
      const name = readName(s, i + 1, e);
      if (name === undefined) return undefined;
      const el: XmlElement = { name, attrs: {}, children: [] };
      const end = scanAttrs(s, e, el.attrs, false);
      if (end === 0) return undefined;
      i = Math.abs(end);
      const parent = stack[stack.length - 1];
      if (parent !== undefined) parent.children.push(el);
      if (end < 0) closed = el;
      // fast-xml-parser refuses nesting past its maxNestedTags (100): deep documents are its call.
      else if (stack.push(el) > 64) return undefined;
    }
    if (closed !== undefined && stack.length === 0) return skipWs(s, i) === s.length ? closed : undefined;
    // Text inside an element carries nothing the documents use; references in it go to the real parser.
    for (;; i++) {
      const c = s.charCodeAt(i);
      if (c === LT) break;
      if (c !== c || c === AMP) return undefined;
    }
  }
}

/** The document element of a well-formed document; XmlSyntaxError otherwise. */
export function parseXml(text: string): XmlElement {
  return scanSubset(text) ?? parseXmlFull(text);
}

/** Every element reached from `root` by the child steps `path` (root's own name first), in document order. */
export function select(root: XmlElement, path: readonly string[]): XmlElement[] {
  if (path.length === 0 || root.name !== path[0]) return [];
  let level = [root];
  for (let i = 1; i < path.length; i++) {
    const next: XmlElement[] = [];
    for (const e of level) for (const c of e.children) if (c.name === path[i]) next.push(c);
    level = next;
  }
  return level;
}

/** An attribute as libxml's xmlGetProp gives it to update_engine: missing reads as "". */
export function attr(e: XmlElement, name: string): string {
  return e.attrs[name] ?? "";
}

/**
 * An attribute value as update_engine's XmlEncode (libxml2's xmlEncodeEntitiesReentrant without a
 * document) writes it: &, <, > as entities, CR and every non-ASCII character as &#x..; references.
 * Unlike the original, `"` is escaped too, so a value with a quote cannot break the document.
 */
export function escapeAttr(s: string): string {
  // Most values (versions, ids, hashes, URLs) need nothing: no copy then, char by char.
  let i = 0;
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === AMP || c === LT || c === GT || c === QUOT || c === CR || c > 0x7f) break;
  }
  if (i === s.length) return s;
  let out = "";
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === "&") out += "&amp;";
    else if (ch === "<") out += "&lt;";
    else if (ch === ">") out += "&gt;";
    else if (ch === '"') out += "&quot;";
    else if (ch === "\r") out += "&#13;";
    else if (c > 0x7f) out += `&#x${c.toString(16).toUpperCase()};`;
    else out += ch;
  }
  return out;
}

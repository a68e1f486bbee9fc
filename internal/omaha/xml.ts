// The small XML layer under the Omaha documents: fast-xml-parser's ordered output turned into plain
// element nodes (document order kept, attributes decoded), XPath-like child steps, attribute escaping.
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

/** The document element of a well-formed document; XmlSyntaxError otherwise. */
export function parseXml(text: string): XmlElement {
  const valid = XMLValidator.validate(text);
  if (valid !== true) throw new XmlSyntaxError(`${valid.err.msg} (line ${valid.err.line})`);
  const roots = toElements(parser.parse(text) as Ordered[]);
  if (roots.length !== 1) throw new XmlSyntaxError(roots.length === 0 ? "no document element" : "more than one document element");
  return roots[0]!;
}

/** Every element reached from `root` by the child steps `path` (root's own name first), in document order. */
export function select(root: XmlElement, path: readonly string[]): XmlElement[] {
  if (path.length === 0 || root.name !== path[0]) return [];
  let level = [root];
  for (const step of path.slice(1)) level = level.flatMap((e) => e.children.filter((c) => c.name === step));
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

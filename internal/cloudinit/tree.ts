// Cloud-config text -> a tree of named, line-numbered nodes, typed the way Go's yaml v1 (YAML 1.1:
// `yes`/`off` are booleans, `0644` an octal int) types them. The validator checks this tree against
// the schema; config.ts reads the values out of it. Parsing is the `yaml` package's, with its
// line counter; nothing here scans the text by hand.
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Alias, type Document, type Node } from "yaml";

/** Go reflect kinds of a decoded value; "null" is Go's invalid Value (a key with nothing after it). */
export type NodeKind = "string" | "int" | "float64" | "bool" | "map" | "slice" | "null";

export interface CNode {
  /** Map key with `-` turned into `_`, or `parent[i]` for a list item. */
  name: string;
  /** 1-based line of the key (map entries) or of the item (list entries). */
  line: number;
  kind: NodeKind;
  /** A scalar as written: what Go stores when it decodes any scalar into a string field. */
  text: string;
  /** `!!binary` content, decoded. */
  bytes?: Uint8Array;
  /** The number an int or float64 scalar stands for (`0644` is 420 in YAML 1.1). */
  num?: number;
  children: CNode[];
}

export interface ParseError {
  line: number;
  message: string;
}

export type Parsed = { ok: true; root: CNode } | { ok: false; error: ParseError };

export function child(n: CNode | undefined, name: string): CNode | undefined {
  return n?.children.find((c) => c.name === name);
}

/** The yaml package's message without its "at line N, column M:" tail and code frame. */
function firstLine(message: string): string {
  return message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, "");
}

// The validator and the reader both parse the same text in one run; the tree is read-only.
let last: { text: string; parsed: Parsed } | undefined;

export function parseTree(text: string): Parsed {
  if (last?.text === text) return last.parsed;
  const parsed = parse(text);
  last = { text, parsed };
  return parsed;
}

function parse(text: string): Parsed {
  const lc = new LineCounter();
  const src = text.replaceAll("\r", "");
  const doc = parseDocument(src, { version: "1.1", uniqueKeys: false, intAsBigInt: true, lineCounter: lc, prettyErrors: false });
  const err = doc.errors[0];
  if (err) {
    const line = err.linePos?.[0]?.line ?? lc.linePos(err.pos[0]).line;
    return { ok: false, error: { line: line || 1, message: firstLine(err.message) } };
  }
  const lineOf = (n: Node | null | undefined, fallback: number) => (n?.range ? lc.linePos(n.range[0]).line : fallback);
  const root: CNode = { name: "", line: 1, kind: "map", text: "", children: [] };
  const contents = doc.contents;
  if (contents === null || (isScalar(contents) && contents.value === null)) return { ok: true, root };
  if (!isMap(contents)) {
    return { ok: false, error: { line: lineOf(contents, 1), message: `cannot unmarshal ${isSeq(contents) ? "!!seq" : "!!str"} into a mapping` } };
  }
  const walk: Walk = { doc, lineOf, nodes: 0, resolved: new Map() };
  try {
    fill(root, contents, walk, 0);
  } catch (e) {
    if (e instanceof TooLarge) return { ok: false, error: { line: e.line, message: e.message } };
    throw e;
  }
  return { ok: true, root };
}

const MAX_DEPTH = 64;
/** Aliases can multiply a small text into an enormous tree ("billion laughs"); this bounds it. */
const MAX_NODES = 200_000;

class TooLarge extends Error {
  constructor(readonly line: number) {
    super(`the document expands to more than ${MAX_NODES} nodes (through aliases)`);
  }
}

interface Walk {
  doc: Document;
  lineOf: (n: Node | null | undefined, fallback: number) => number;
  nodes: number;
  /** Alias.resolve searches the document; each alias is looked up once. */
  resolved: Map<Node, Node | undefined>;
}

function resolveAlias(a: Alias, w: Walk): Node | undefined {
  if (!w.resolved.has(a)) w.resolved.set(a, a.resolve(w.doc) as Node | undefined);
  return w.resolved.get(a);
}

function fill(out: CNode, n: Node | null | undefined, w: Walk, depth: number): void {
  if (++w.nodes > MAX_NODES) throw new TooLarge(out.line);
  // An alias may point at its own ancestor; the depth bound turns that cycle into a null.
  if (isAlias(n)) n = depth < MAX_DEPTH ? resolveAlias(n, w) : undefined;
  if (n === null || n === undefined || depth > MAX_DEPTH) {
    out.kind = "null";
    return;
  }
  if (isMap(n)) {
    out.kind = "map";
    for (const pair of n.items) {
      const k = pair.key as Node | null;
      const keyText = isScalar(k) ? String(k.value) : "";
      const c: CNode = { name: keyText.replaceAll("-", "_"), line: w.lineOf(k, out.line), kind: "null", text: "", children: [] };
      fill(c, pair.value as Node | null, w, depth + 1);
      out.children.push(c);
    }
    return;
  }
  if (isSeq(n)) {
    out.kind = "slice";
    n.items.forEach((item, i) => {
      const c: CNode = { name: `${out.name}[${i}]`, line: w.lineOf(item as Node, out.line), kind: "null", text: "", children: [] };
      fill(c, item as Node | null, w, depth + 1);
      out.children.push(c);
    });
    return;
  }
  if (isScalar(n)) {
    const v = n.value;
    const source = n.source ?? String(v);
    if (v === null || v === undefined) out.kind = "null";
    else if (typeof v === "bigint") [out.kind, out.text, out.num] = ["int", source, Number(v)];
    else if (typeof v === "number") [out.kind, out.text, out.num] = ["float64", source, v];
    else if (typeof v === "boolean") [out.kind, out.text] = ["bool", source];
    else if (v instanceof Uint8Array) [out.kind, out.text, out.bytes] = ["string", source, v];
    else if (typeof v === "string") [out.kind, out.text] = ["string", v];
    // Go's yaml v1 has no timestamp type: a date stays the string it was written as.
    else [out.kind, out.text] = ["string", source];
    return;
  }
  out.kind = "null";
}

/** YAML 1.1 booleans as Go's yaml v1 reads them. */
export function boolOf(n: CNode | undefined): boolean {
  return n?.kind === "bool" && /^(y|Y|yes|Yes|YES|true|True|TRUE|on|On|ON)$/.test(n.text);
}

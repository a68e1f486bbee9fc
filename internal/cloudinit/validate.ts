// The cloud-config validator (coreos-cloudinit config/validate): classification of the user-data,
// then every rule over the line-numbered tree. Entries are sorted by line; within a line they keep
// the order of the rules, as the original appends them.
import { posix } from "node:path";
import { decodeContent } from "./encoding.ts";
import { humanType, SCHEMA, type Field } from "./schema.ts";
import { child, parseTree, type CNode, type NodeKind } from "./tree.ts";

export type EntryKind = "error" | "warning" | "info";

export interface Entry {
  kind: EntryKind;
  message: string;
  line: number;
}

export type UserdataType = "empty" | "script" | "ignition" | "cloud-config" | "unknown";

function header(text: string): string {
  return text.split("\n", 1)[0]!;
}

export function isIgnition(text: string): boolean {
  try {
    const j = JSON.parse(text) as unknown;
    if (typeof j !== "object" || j === null || Array.isArray(j)) return false;
    const o = j as { ignitionVersion?: unknown; ignition?: { version?: unknown } };
    return typeof o.ignitionVersion === "number" || (typeof o.ignition === "object" && o.ignition !== null && typeof o.ignition.version === "string");
  } catch {
    return false;
  }
}

/** What the user-data is, in the order coreos-cloudinit tests it. */
export function classify(text: string): UserdataType {
  if (text.length === 0) return "empty";
  if (header(text).startsWith("#!")) return "script";
  if (isIgnition(text)) return "ignition";
  if (header(text).trimEnd() === "#cloud-config") return "cloud-config";
  return "unknown";
}

export function formatEntry(e: Entry): string {
  return `line ${e.line}: ${e.kind}: ${e.message}`;
}

export function validate(text: string): Entry[] {
  switch (classify(text)) {
    case "empty":
    case "script":
    case "ignition":
      return [];
    case "unknown":
      return [{ kind: "error", message: 'must be "#cloud-config" or begin with "#!"', line: 1 }];
    case "cloud-config":
      return validateCloudConfig(text);
  }
}

export function validateCloudConfig(text: string): Entry[] {
  const parsed = parseTree(text);
  if (!parsed.ok) return [{ kind: "error", ...parsed.error }];
  const out: Entry[] = [];
  const report = (kind: EntryKind, line: number, message: string) => out.push({ kind, line, message });
  const root = parsed.root;
  checkDiscoveryUrl(root, report);
  checkEncoding(root, report);
  checkStructure(root, SCHEMA, report);
  checkValidity(root, SCHEMA, report);
  checkWriteFiles(root, report);
  checkWriteFilesUnderCoreos(root, report);
  return out.map((e, i) => [e, i] as const).sort((a, b) => a[0].line - b[0].line || a[1] - b[1]).map(([e]) => e);
}

type Report = (kind: EntryKind, line: number, message: string) => void;

/** Go's url.ParseRequestURI: an absolute URI or an absolute path. */
export function isRequestURI(s: string): boolean {
  if (s === "" || /[\x00-\x1f\x7f]/.test(s) || s.startsWith(":")) return false;
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*):(.*)$/s.exec(s);
  let rest = s;
  if (m) {
    rest = m[2]!;
    if (!rest.startsWith("/")) return true;
    if (rest.startsWith("//")) {
      const authority = rest.slice(2).split(/[/?#]/, 1)[0]!;
      const host = authority.slice(authority.lastIndexOf("@") + 1);
      if (!/^(\[[0-9a-fA-F:.%a-zA-Z]*\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(:[0-9]*)?$/.test(host)) return false;
    }
  } else if (!s.startsWith("/")) {
    return false;
  }
  return !/%(?![0-9a-fA-F]{2})/.test(rest.split("?", 1)[0]!);
}

function checkDiscoveryUrl(root: CNode, report: Report): void {
  const c = child(child(child(root, "coreos"), "etcd"), "discovery");
  if (c && c.kind !== "null" && !isRequestURI(c.text)) report("warning", c.line, "discovery URL is not valid");
}

function items(n: CNode | undefined): CNode[] {
  return n?.kind === "slice" ? n.children : [];
}

function checkEncoding(root: CNode, report: Report): void {
  for (const f of items(child(root, "write_files"))) {
    const e = child(f, "encoding");
    if (!e || e.kind === "null") continue;
    const c = child(f, "content");
    const bytes = c?.bytes ?? new TextEncoder().encode(c?.text ?? "");
    try {
      decodeContent(bytes, e.text);
    } catch {
      report("error", c?.line ?? f.line, `content cannot be decoded as "${e.text}"`);
    }
  }
}

function compatible(n: NodeKind, g: Field["kind"]): boolean {
  switch (g) {
    case "string":
      return n === "string" || n === "int" || n === "float64" || n === "bool";
    case "struct":
      return n === "map";
    case "float64":
      return n === "float64" || n === "int";
    case "slice":
      return n === "slice";
    default:
      return n === g;
  }
}

function checkStructure(n: CNode, g: Field, report: Report): void {
  if (!compatible(n.kind, g.kind)) {
    report("warning", n.line, `incorrect type for "${n.name}" (want ${humanType(g)})`);
    return;
  }
  if (g.kind === "struct") {
    for (const c of n.children) {
      const cg = Object.hasOwn(g.fields, c.name) ? g.fields[c.name] : undefined;
      if (!cg) {
        report("warning", c.line, `unrecognized key "${c.name}"`);
        continue;
      }
      if (cg.deprecated) report("warning", c.line, `deprecated key "${c.name}" (${cg.deprecated})`);
      checkStructure(c, cg, report);
    }
  } else if (g.kind === "slice") {
    for (const c of n.children) checkStructure(c, g.elem, report);
  }
}

function checkValidity(n: CNode, g: Field, report: Report): void {
  if (g.kind === "struct") {
    for (const c of n.children) if (Object.hasOwn(g.fields, c.name)) checkValidity(c, g.fields[c.name]!, report);
  } else if (g.kind === "slice") {
    for (const c of n.children) checkValidity(c, g.elem, report);
  } else if (g.valid && compatible(n.kind, g.kind) && n.text !== "" && !g.valid.test(n.text)) {
    report("error", n.line, `invalid value ${n.text}`);
  }
}

/** `/usr` is the read-only, verified USR partition. */
export function underUsr(path: string): boolean {
  const dir = posix.dirname(posix.normalize(`/${path}`));
  return dir === "/usr" || dir.startsWith("/usr/");
}

function checkWriteFiles(root: CNode, report: Report): void {
  for (const f of items(child(root, "write_files"))) {
    const p = child(f, "path");
    if (p && p.kind !== "null" && underUsr(p.text)) report("error", p.line, "file cannot be written to a read-only filesystem");
  }
}

function checkWriteFilesUnderCoreos(root: CNode, report: Report): void {
  const c = child(child(root, "coreos"), "write_files");
  if (c) report("info", c.line, "write_files doesn't belong under coreos");
}

// etcdctl's three output formats and its error lines, byte for byte. `-o json` is Go's
// json.Marshal of client.Response, which differs from the server's JSON (every node has
// "value" and "nodes", "prevNode" is null rather than absent, <>& are escaped).
import { EtcdError } from "../kv/errors.ts";
import type { NodeJSON } from "../kv/types.ts";
import type { KeyResponse } from "../kvclient/keys.ts";
import { ClusterError } from "../kvclient/errors.ts";
import { Exit, type IO } from "./io.ts";

/** encoding/json's string encoding (Go 1.19: \b and \f as \u00XX, HTML characters escaped). */
export function goJSONString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const ch = s[i]!;
    if (ch === '"') out += '\\"';
    else if (ch === "\\") out += "\\\\";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (c < 0x20 || ch === "<" || ch === ">" || ch === "&" || c === 0x2028 || c === 0x2029) {
      out += `\\u${c.toString(16).padStart(4, "0")}`;
    } else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && s.charCodeAt(i + 1) >= 0xdc00 && s.charCodeAt(i + 1) <= 0xdfff) {
      out += ch + s[++i];
    } else if (c >= 0xd800 && c <= 0xdfff) out += "\\ufffd";
    else out += ch;
  }
  return `${out}"`;
}

function goNode(n: NodeJSON | undefined): string {
  if (!n) return "null";
  let s = `{"key":${goJSONString(n.key ?? "")}`;
  if (n.dir) s += `,"dir":true`;
  s += `,"value":${goJSONString(n.value ?? "")}`;
  s += `,"nodes":${n.nodes ? `[${n.nodes.map(goNode).join(",")}]` : "null"}`;
  s += `,"createdIndex":${n.createdIndex ?? 0},"modifiedIndex":${n.modifiedIndex ?? 0}`;
  if (n.expiration !== undefined) s += `,"expiration":${goJSONString(n.expiration)}`;
  if (n.ttl) s += `,"ttl":${n.ttl}`;
  return `${s}}`;
}

export function goResponseJSON(r: KeyResponse): string {
  return `{"action":${goJSONString(r.action)},"node":${goNode(r.node)},"prevNode":${goNode(r.prevNode)}}`;
}

/** printResponseKey: one key's result in the chosen format. */
export function printResponseKey(io: IO, r: KeyResponse, format: string): void {
  switch (format) {
    case "simple":
      if (r.action !== "delete") io.out(`${r.node.value ?? ""}\n`);
      else io.out(`PrevNode.Value: ${r.prevNode?.value ?? ""}\n`);
      return;
    case "extended": {
      let s = `Key: ${r.node.key ?? ""}\nCreated-Index: ${r.node.createdIndex ?? 0}\nModified-Index: ${r.node.modifiedIndex ?? 0}\n`;
      if (r.prevNode) s += `PrevNode.Value: ${r.prevNode.value ?? ""}\n`;
      s += `TTL: ${r.node.ttl ?? 0}\nIndex: ${r.etcdIndex}\n`;
      if (r.action !== "delete") s += `\n${r.node.value ?? ""}\n`;
      io.out(s);
      return;
    }
    case "json":
      io.out(`${goResponseJSON(r)}\n`);
      return;
    default:
      io.err(`Unsupported output format: ${format}\n`);
  }
}

/** An error as Go's err.Error() renders it. */
export function errorText(e: unknown): string {
  if (e instanceof EtcdError) return `${e.errorCode}: ${e.message} (${e.errorCause}) [${e.index}]`;
  if (e instanceof Error) return e.message;
  return String(e);
}

/** handleError: "Error:  <err>" (Println's two spaces), the per-endpoint detail, then exit. */
export function handleError(io: IO, code: number, e: unknown): never {
  io.err(`Error:  ${errorText(e)}\n`);
  if (e instanceof ClusterError) io.err(`${e.detail()}\n`);
  throw new Exit(code);
}

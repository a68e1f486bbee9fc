// How a configuration change travels inside a log entry (type 1). Raft needs the change itself
// (who is added or removed) while the application needs its own payload (e.g. the member's peer
// URLs), so the entry carries both:
//
//   byte 0        1 = add, 2 = remove
//   byte 1        n = length of the node ID in UTF-8 bytes (IDs are short hex strings)
//   bytes 2..2+n  the node ID
//   the rest      the application's bytes, untouched
//
// The app decodes committed type-1 entries with decodeConfChange, acts on its data and hands the
// change back through RawNode.applyConfChange.
import type { ConfChange } from "./types.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeConfChange(cc: ConfChange, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const id = encoder.encode(cc.nodeId);
  if (id.length === 0 || id.length > 255) throw new Error(`raft: invalid node ID "${cc.nodeId}" in conf change`);
  const out = new Uint8Array(2 + id.length + data.length);
  out[0] = cc.type === "add" ? 1 : 2;
  out[1] = id.length;
  out.set(id, 2);
  out.set(data, 2 + id.length);
  return out;
}

export function decodeConfChange(bytes: Uint8Array): { cc: ConfChange; data: Uint8Array } {
  const kind = bytes[0];
  const n = bytes[1] ?? 0;
  if ((kind !== 1 && kind !== 2) || n === 0 || bytes.length < 2 + n) {
    throw new Error("raft: malformed conf change entry");
  }
  return {
    cc: { type: kind === 1 ? "add" : "remove", nodeId: decoder.decode(bytes.subarray(2, 2 + n)) },
    data: bytes.subarray(2 + n),
  };
}

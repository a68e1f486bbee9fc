// Raft messages on the wire between members: a batch is JSON with entry data in base64. A snapshot
// travels on its own request as one JSON header line followed by the raw data, so a large store
// is neither base64-inflated nor parsed as JSON twice.
import type { Entry, Message, Snapshot } from "../raft/index.ts";

interface WireEntry {
  term: number;
  index: number;
  type: 0 | 1;
  data: string;
}

type WireMessage = Omit<Message, "entries" | "snapshot"> & {
  entries: WireEntry[];
  snapshot?: Omit<Snapshot, "data">;
};

const b64 = (d: Uint8Array) => Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString("base64");
const unb64 = (s: string) => new Uint8Array(Buffer.from(s, "base64"));

function toWire(m: Message): WireMessage {
  const { snapshot, entries, ...rest } = m;
  const w: WireMessage = { ...rest, entries: entries.map((e) => ({ term: e.term, index: e.index, type: e.type, data: b64(e.data) })) };
  if (snapshot) w.snapshot = { index: snapshot.index, term: snapshot.term, voters: snapshot.voters };
  return w;
}

function fromWire(w: WireMessage, snapshotData?: Uint8Array): Message {
  const { snapshot, entries, ...rest } = w;
  const m: Message = { ...rest, entries: entries.map((e): Entry => ({ term: e.term, index: e.index, type: e.type, data: unb64(e.data) })) };
  if (snapshot) m.snapshot = { ...snapshot, data: snapshotData ?? new Uint8Array(0) };
  return m;
}

export function encodeBatch(msgs: Message[]): string {
  return JSON.stringify(msgs.map(toWire));
}

export function decodeBatch(body: string): Message[] {
  const parsed = JSON.parse(body) as unknown;
  if (!Array.isArray(parsed)) throw new Error("raft batch: not an array");
  return (parsed as WireMessage[]).map((w) => fromWire(w));
}

const encoder = new TextEncoder();

/** MsgSnap as `<header JSON>\n<snapshot data>`. */
export function encodeSnapshotMessage(m: Message): Uint8Array {
  const head = encoder.encode(`${JSON.stringify(toWire(m))}\n`);
  const data = m.snapshot?.data ?? new Uint8Array(0);
  const out = new Uint8Array(head.length + data.length);
  out.set(head, 0);
  out.set(data, head.length);
  return out;
}

export function decodeSnapshotMessage(body: Uint8Array): Message {
  const nl = body.indexOf(10);
  if (nl < 0) throw new Error("raft snapshot: no header");
  const head = JSON.parse(new TextDecoder().decode(body.subarray(0, nl))) as WireMessage;
  return fromWire(head, body.subarray(nl + 1));
}

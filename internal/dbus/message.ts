// D-Bus messages: the fixed header, the header fields array a(yv) and the body. We always send
// little-endian; a big-endian peer's messages (the daemon forwards them as sent) are read too.
import { MarshalError, Reader, unmarshal, Writer, type Value } from "./marshal.ts";

export const MessageType = { MethodCall: 1, MethodReturn: 2, Error: 3, Signal: 4 } as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

export const Flag = { NoReplyExpected: 1, NoAutoStart: 2 } as const;

type FieldKey = "path" | "interface" | "member" | "errorName" | "replySerial" | "destination" | "sender" | "signature";

/** The header fields by code: the type each travels as and the Message property it fills (unix fds: none, they are refused). */
const FIELDS: Record<number, { sig: string; key: FieldKey | null }> = {
  1: { sig: "o", key: "path" },
  2: { sig: "s", key: "interface" },
  3: { sig: "s", key: "member" },
  4: { sig: "s", key: "errorName" },
  5: { sig: "u", key: "replySerial" },
  6: { sig: "s", key: "destination" },
  7: { sig: "s", key: "sender" },
  8: { sig: "g", key: "signature" },
  9: { sig: "u", key: null },
};

export interface Message {
  type: MessageType;
  flags: number;
  serial: number;
  path?: string;
  interface?: string;
  member?: string;
  errorName?: string;
  replySerial?: number;
  destination?: string;
  sender?: string;
  /** "" when the body is empty. */
  signature: string;
  body: Value[];
}

const MAX_MESSAGE = 128 * 1024 * 1024;

export function encodeMessage(m: Message): Uint8Array {
  const body = new Writer(0);
  body.writeAll(m.signature, m.body);
  const bodyBytes = body.bytes();

  const fields: Value[] = [];
  for (const [code, { sig, key }] of Object.entries(FIELDS)) {
    const value = key === null ? undefined : m[key];
    if (value !== undefined && value !== "") fields.push([Number(code), { sig, value }]);
  }

  const h = new Writer(0);
  h.raw(new Uint8Array([0x6c /* 'l' */, m.type, m.flags, 1]));
  h.u32(bodyBytes.length);
  h.u32(m.serial);
  h.write({ t: "a", elem: { t: "(", fields: [{ t: "y" }, { t: "v" }] } }, fields);
  h.align(8);
  h.raw(bodyBytes);
  return h.bytes();
}

/** Length of the message at the start of `buf`, or null when more bytes are needed. */
export function messageLength(buf: Uint8Array): number | null {
  if (buf.length < 16) return null;
  const little = endian(buf[0]!);
  const v = new DataView(buf.buffer, buf.byteOffset, 16);
  const bodyLen = v.getUint32(4, little);
  const fieldsLen = v.getUint32(12, little);
  const headerEnd = 16 + fieldsLen + ((8 - ((16 + fieldsLen) % 8)) % 8);
  const total = headerEnd + bodyLen;
  if (total > MAX_MESSAGE) throw new MarshalError(`message of ${total} bytes exceeds ${MAX_MESSAGE}`);
  return buf.length >= total ? total : null;
}

function endian(b: number): boolean {
  if (b === 0x6c) return true;
  if (b === 0x42) return false;
  throw new MarshalError(`bad endianness byte 0x${b.toString(16)}`);
}

/** Decodes exactly one whole message (see messageLength). */
export function decodeMessage(buf: Uint8Array): Message {
  const little = endian(buf[0]!);
  const type = buf[1]!;
  if (type < 1 || type > 4) throw new MarshalError(`unknown message type ${type}`);
  if (buf[3] !== 1) throw new MarshalError(`unsupported protocol version ${buf[3]}`);
  const r = new Reader(buf, little);
  r.pos = 4;
  const bodyLen = r.u32();
  const serial = r.u32();
  if (serial === 0) throw new MarshalError("message serial 0");
  const fields = r.read({ t: "a", elem: { t: "(", fields: [{ t: "y" }, { t: "v" }] } }) as [number, { sig: string; value: Value }][];
  r.align(8);
  const m: Message = { type: type as MessageType, flags: buf[2]!, serial, signature: "", body: [] };
  for (const [code, { sig, value }] of fields) {
    const want = FIELDS[code];
    if (want === undefined) continue; // unknown fields must be ignored
    if (sig !== want.sig) throw new MarshalError(`header field ${code} has type ${sig}, want ${want.sig}`);
    if (want.key === null) {
      if (value !== 0) throw new MarshalError("unix fds are not supported");
    } else {
      // The type was checked above: "o", "s", "g" unmarshal to strings, "u" to a number.
      (m as unknown as Record<FieldKey, Value>)[want.key] = value;
    }
  }
  const body = buf.subarray(r.pos, r.pos + bodyLen);
  if (body.length !== bodyLen) throw new MarshalError("truncated body");
  m.body = unmarshal(m.signature, body, little);
  return m;
}

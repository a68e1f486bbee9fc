// D-Bus messages: the fixed header, the header fields array a(yv) and the body. We always send
// little-endian; a big-endian peer's messages (the daemon forwards them as sent) are read too.
import { MarshalError, Reader, unmarshal, Writer, type Value } from "./marshal.ts";

export const MessageType = { MethodCall: 1, MethodReturn: 2, Error: 3, Signal: 4 } as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

export const Flag = { NoReplyExpected: 1, NoAutoStart: 2 } as const;

const Field = { Path: 1, Interface: 2, Member: 3, ErrorName: 4, ReplySerial: 5, Destination: 6, Sender: 7, Signature: 8, UnixFds: 9 } as const;
const FIELD_SIG: Record<number, string> = { 1: "o", 2: "s", 3: "s", 4: "s", 5: "u", 6: "s", 7: "s", 8: "g", 9: "u" };

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
  const add = (code: number, value: Value | undefined) => {
    if (value !== undefined && value !== "") fields.push([code, { sig: FIELD_SIG[code]!, value }]);
  };
  add(Field.Path, m.path);
  add(Field.Interface, m.interface);
  add(Field.Member, m.member);
  add(Field.ErrorName, m.errorName);
  add(Field.ReplySerial, m.replySerial);
  add(Field.Destination, m.destination);
  add(Field.Sender, m.sender);
  add(Field.Signature, m.signature);

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
    const want = FIELD_SIG[code];
    if (want === undefined) continue; // unknown fields must be ignored
    if (sig !== want) throw new MarshalError(`header field ${code} has type ${sig}, want ${want}`);
    switch (code) {
      case Field.Path:
        m.path = value as string;
        break;
      case Field.Interface:
        m.interface = value as string;
        break;
      case Field.Member:
        m.member = value as string;
        break;
      case Field.ErrorName:
        m.errorName = value as string;
        break;
      case Field.ReplySerial:
        m.replySerial = value as number;
        break;
      case Field.Destination:
        m.destination = value as string;
        break;
      case Field.Sender:
        m.sender = value as string;
        break;
      case Field.Signature:
        m.signature = value as string;
        break;
      case Field.UnixFds:
        if (value !== 0) throw new MarshalError("unix fds are not supported");
        break;
    }
  }
  const body = buf.subarray(r.pos, r.pos + bodyLen);
  if (body.length !== bodyLen) throw new MarshalError("truncated body");
  m.body = unmarshal(m.signature, body, little);
  return m;
}

// The D-Bus wire format (the specification's "Marshaling" section): signatures and values of the
// basic and container types, aligned relative to the start of the message (callers start a body
// at an 8-aligned offset, so body-relative alignment is the same thing).
//
// Values in JavaScript:
//   y n q i u d  number       x t  bigint (a number is accepted when writing)
//   b            boolean      s o g  string
//   a<T>         T[]          a{KV}  [K, V][] (a dict entry is a two-field struct)
//   (…)          Value[]      v      Variant { sig, value }

export type Value = number | bigint | boolean | string | Variant | Value[];

export interface Variant {
  sig: string;
  value: Value;
}

export type Type =
  | { t: "y" | "b" | "n" | "q" | "i" | "u" | "x" | "t" | "d" | "s" | "o" | "g" | "v" }
  | { t: "a"; elem: Type }
  | { t: "("; fields: Type[] }
  | { t: "{"; key: Type; value: Type };

export class MarshalError extends Error {}

// Unix fds (h) are left out: nothing here passes descriptors.
const BASIC = "ybnqiuxtdsog";
const MAX_SIGNATURE = 255;
const MAX_ARRAY = 64 * 1024 * 1024;
const MAX_DEPTH = 32;

/** Parses a signature of any number of complete types. */
export function parseSignature(sig: string): Type[] {
  if (sig.length > MAX_SIGNATURE) throw new MarshalError(`signature longer than ${MAX_SIGNATURE}: ${sig.slice(0, 40)}…`);
  const out: Type[] = [];
  let i = 0;
  const one = (depth: number): Type => {
    if (depth > MAX_DEPTH) throw new MarshalError(`signature nests deeper than ${MAX_DEPTH}: ${sig}`);
    const c = sig[i++];
    if (c === undefined) throw new MarshalError(`signature ends inside a type: ${JSON.stringify(sig)}`);
    if (BASIC.includes(c) || c === "v") return { t: c as "y" };
    if (c === "a") {
      if (sig[i] === "{") {
        i++;
        const key = one(depth + 1);
        if (!BASIC.includes(key.t)) throw new MarshalError(`dict key must be a basic type: ${sig}`);
        const value = one(depth + 1);
        if (sig[i++] !== "}") throw new MarshalError(`dict entry needs exactly two types: ${sig}`);
        return { t: "a", elem: { t: "{", key, value } };
      }
      return { t: "a", elem: one(depth + 1) };
    }
    if (c === "(") {
      const fields: Type[] = [];
      while (sig[i] !== ")") {
        if (i >= sig.length) throw new MarshalError(`unclosed struct: ${sig}`);
        fields.push(one(depth + 1));
      }
      i++;
      if (fields.length === 0) throw new MarshalError(`empty struct: ${sig}`);
      return { t: "(", fields };
    }
    throw new MarshalError(`unexpected ${JSON.stringify(c)} in signature ${JSON.stringify(sig)}`);
  };
  while (i < sig.length) out.push(one(0));
  return out;
}

export function typeSignature(t: Type): string {
  switch (t.t) {
    case "a":
      return `a${typeSignature(t.elem)}`;
    case "(":
      return `(${t.fields.map(typeSignature).join("")})`;
    case "{":
      return `{${typeSignature(t.key)}${typeSignature(t.value)}}`;
    default:
      return t.t;
  }
}

export function alignOf(t: Type): number {
  switch (t.t) {
    case "y":
    case "g":
    case "v":
      return 1;
    case "n":
    case "q":
      return 2;
    case "x":
    case "t":
    case "d":
    case "(":
    case "{":
      return 8;
    default:
      return 4;
  }
}

const OBJECT_PATH = /^\/$|^(\/[A-Za-z0-9_]+)+$/;
const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });

export class Writer {
  private buf = new Uint8Array(256);
  private view = new DataView(this.buf.buffer);
  /** Offset of the first byte relative to the message start, for alignment. */
  constructor(private readonly base = 0) {}
  pos = 0;

  bytes(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  align(n: number): void {
    const pad = (n - ((this.base + this.pos) % n)) % n;
    this.room(pad);
    this.buf.fill(0, this.pos, this.pos + pad);
    this.pos += pad;
  }

  write(t: Type, v: Value): void {
    const bad = (want: string) => new MarshalError(`${typeSignature(t)}: want ${want}, got ${describe(v)}`);
    this.align(alignOf(t));
    switch (t.t) {
      case "y":
        this.room(1);
        this.view.setUint8(this.pos, int(v, 0, 0xff, bad));
        this.pos += 1;
        return;
      case "b":
        if (typeof v !== "boolean") throw bad("a boolean");
        return this.u32(v ? 1 : 0);
      case "n":
        this.room(2);
        this.view.setInt16(this.pos, int(v, -0x8000, 0x7fff, bad), true);
        this.pos += 2;
        return;
      case "q":
        this.room(2);
        this.view.setUint16(this.pos, int(v, 0, 0xffff, bad), true);
        this.pos += 2;
        return;
      case "i":
        this.room(4);
        this.view.setInt32(this.pos, int(v, -0x80000000, 0x7fffffff, bad), true);
        this.pos += 4;
        return;
      case "u":
        return this.u32(int(v, 0, 0xffffffff, bad));
      case "x":
        this.room(8);
        this.view.setBigInt64(this.pos, big(v, -(1n << 63n), (1n << 63n) - 1n, bad), true);
        this.pos += 8;
        return;
      case "t":
        this.room(8);
        this.view.setBigUint64(this.pos, big(v, 0n, (1n << 64n) - 1n, bad), true);
        this.pos += 8;
        return;
      case "d":
        if (typeof v !== "number") throw bad("a number");
        this.room(8);
        this.view.setFloat64(this.pos, v, true);
        this.pos += 8;
        return;
      case "s":
      case "o": {
        if (typeof v !== "string") throw bad("a string");
        if (t.t === "o" && !OBJECT_PATH.test(v)) throw new MarshalError(`not an object path: ${JSON.stringify(v)}`);
        const b = enc.encode(v);
        if (b.includes(0)) throw new MarshalError("a string may not contain NUL");
        this.u32(b.length);
        this.raw(b);
        this.raw(new Uint8Array(1));
        return;
      }
      case "g": {
        if (typeof v !== "string") throw bad("a signature string");
        parseSignature(v);
        this.sig(v);
        return;
      }
      case "v": {
        if (!isVariant(v)) throw bad("a variant {sig, value}");
        const types = parseSignature(v.sig);
        if (types.length !== 1) throw new MarshalError(`a variant holds exactly one type, not ${JSON.stringify(v.sig)}`);
        this.sig(v.sig);
        this.write(types[0]!, v.value);
        return;
      }
      case "a": {
        if (!Array.isArray(v)) throw bad("an array");
        this.align(4);
        const lenAt = this.pos;
        this.u32(0);
        this.align(alignOf(t.elem));
        const start = this.pos;
        for (const e of v) this.write(t.elem, e);
        const len = this.pos - start;
        if (len > MAX_ARRAY) throw new MarshalError(`array of ${len} bytes exceeds ${MAX_ARRAY}`);
        this.view.setUint32(lenAt, len, true);
        return;
      }
      case "(":
      case "{": {
        const fields = t.t === "(" ? t.fields : [t.key, t.value];
        if (!Array.isArray(v) || v.length !== fields.length) throw bad(`${fields.length} fields`);
        fields.forEach((f, k) => this.write(f, v[k]!));
        return;
      }
    }
  }

  /** Writes every value of a signature (a message body). */
  writeAll(sig: string, values: Value[]): void {
    const types = parseSignature(sig);
    if (types.length !== values.length) throw new MarshalError(`signature ${JSON.stringify(sig)} has ${types.length} values, got ${values.length}`);
    types.forEach((t, k) => this.write(t, values[k]!));
  }

  u32(n: number): void {
    this.align(4);
    this.room(4);
    this.view.setUint32(this.pos, n, true);
    this.pos += 4;
  }

  private sig(s: string): void {
    const b = enc.encode(s);
    this.room(2 + b.length);
    this.buf[this.pos++] = b.length;
    this.raw(b);
    this.buf[this.pos++] = 0;
  }

  raw(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
}

export class Reader {
  private readonly view: DataView;
  pos = 0;
  /** `base`: offset of buf[0] relative to the message start. */
  constructor(
    private readonly buf: Uint8Array,
    private readonly little = true,
    private readonly base = 0,
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  get done(): boolean {
    return this.pos >= this.buf.length;
  }

  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw new MarshalError(`truncated: need ${n} byte(s) at ${this.pos} of ${this.buf.length}`);
  }

  align(n: number): void {
    const pad = (n - ((this.base + this.pos) % n)) % n;
    this.need(pad);
    for (let k = 0; k < pad; k++) if (this.buf[this.pos + k] !== 0) throw new MarshalError(`non-zero padding at ${this.pos + k}`);
    this.pos += pad;
  }

  read(t: Type, depth = 0): Value {
    if (depth > 64) throw new MarshalError("values nest too deep");
    this.align(alignOf(t));
    const v = this.view;
    switch (t.t) {
      case "y":
        this.need(1);
        return v.getUint8(this.pos++);
      case "b": {
        const n = this.u32();
        if (n > 1) throw new MarshalError(`boolean ${n} is neither 0 nor 1`);
        return n === 1;
      }
      case "n":
        this.need(2);
        this.pos += 2;
        return v.getInt16(this.pos - 2, this.little);
      case "q":
        this.need(2);
        this.pos += 2;
        return v.getUint16(this.pos - 2, this.little);
      case "i":
        this.need(4);
        this.pos += 4;
        return v.getInt32(this.pos - 4, this.little);
      case "u":
        return this.u32();
      case "x":
        this.need(8);
        this.pos += 8;
        return v.getBigInt64(this.pos - 8, this.little);
      case "t":
        this.need(8);
        this.pos += 8;
        return v.getBigUint64(this.pos - 8, this.little);
      case "d":
        this.need(8);
        this.pos += 8;
        return v.getFloat64(this.pos - 8, this.little);
      case "s":
      case "o": {
        const len = this.u32();
        const s = this.str(len);
        if (t.t === "o" && !OBJECT_PATH.test(s)) throw new MarshalError(`not an object path: ${JSON.stringify(s)}`);
        return s;
      }
      case "g":
        return this.sig();
      case "v": {
        const sig = this.sig();
        const types = parseSignature(sig);
        if (types.length !== 1) throw new MarshalError(`a variant holds exactly one type, not ${JSON.stringify(sig)}`);
        return { sig, value: this.read(types[0]!, depth + 1) };
      }
      case "a": {
        const len = this.u32();
        if (len > MAX_ARRAY) throw new MarshalError(`array of ${len} bytes exceeds ${MAX_ARRAY}`);
        this.align(alignOf(t.elem));
        this.need(len);
        const end = this.pos + len;
        const out: Value[] = [];
        while (this.pos < end) out.push(this.read(t.elem, depth + 1));
        if (this.pos !== end) throw new MarshalError("array elements overrun the array length");
        return out;
      }
      case "(":
        return t.fields.map((f) => this.read(f, depth + 1));
      case "{":
        return [this.read(t.key, depth + 1), this.read(t.value, depth + 1)];
    }
  }

  readAll(sig: string): Value[] {
    return parseSignature(sig).map((t) => this.read(t));
  }

  u32(): number {
    this.align(4);
    this.need(4);
    this.pos += 4;
    return this.view.getUint32(this.pos - 4, this.little);
  }

  private str(len: number): string {
    this.need(len + 1);
    const b = this.buf.subarray(this.pos, this.pos + len);
    if (this.buf[this.pos + len] !== 0) throw new MarshalError("string not NUL-terminated");
    this.pos += len + 1;
    try {
      return dec.decode(b);
    } catch {
      throw new MarshalError("string is not UTF-8");
    }
  }

  private sig(): string {
    this.need(1);
    const len = this.buf[this.pos++]!;
    return this.str(len);
  }
}

/** Body bytes of `values` by `sig`. */
export function marshal(sig: string, values: Value[], base = 0): Uint8Array {
  const w = new Writer(base);
  w.writeAll(sig, values);
  return w.bytes();
}

/** Values of a body; the whole body must be consumed. */
export function unmarshal(sig: string, body: Uint8Array, little = true): Value[] {
  const r = new Reader(body, little);
  const out = r.readAll(sig);
  if (!r.done) throw new MarshalError(`${body.length - r.pos} byte(s) left after ${JSON.stringify(sig)}`);
  return out;
}

export function isVariant(v: Value): v is Variant {
  return typeof v === "object" && v !== null && !Array.isArray(v) && typeof (v as Variant).sig === "string" && "value" in v;
}

function describe(v: Value): string {
  if (Array.isArray(v)) return `an array of ${v.length}`;
  return typeof v === "object" ? "an object" : `${typeof v} ${String(v)}`;
}

function int(v: Value, min: number, max: number, bad: (w: string) => Error): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) throw bad(`an integer in ${min}..${max}`);
  return v;
}

function big(v: Value, min: bigint, max: bigint, bad: (w: string) => Error): bigint {
  let b: bigint;
  if (typeof v === "bigint") b = v;
  else if (typeof v === "number" && Number.isSafeInteger(v)) b = BigInt(v);
  else throw bad("a bigint or safe integer");
  if (b < min || b > max) throw bad(`an integer in ${min}..${max}`);
  return b;
}

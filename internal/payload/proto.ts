// The protobuf messages of a CrAU payload (package chromeos_update_engine), field numbers as in
// update_metadata.proto. Hand-written wire code: five small proto2 messages do not justify a
// schema compiler step (protobufjs/@bufbuild need .proto codegen or runtime reflection), and the
// one subtle value, the sparse-hole extent start 2^64-1, needs exact uint64 handling anyway.

export const HOLE = "hole" as const;
const UINT64_MAX = 0xffff_ffff_ffff_ffffn;

export interface Extent {
  /** First block, or HOLE (start_block = 2^64-1) for a sparse extent that is never written. */
  startBlock: number | typeof HOLE;
  numBlocks: number;
}

export enum OpType {
  REPLACE = 0,
  REPLACE_BZ = 1,
  MOVE = 2,
  BSDIFF = 3,
}

export interface InstallOperation {
  type: OpType;
  dataOffset?: number;
  dataLength?: number;
  srcExtents: Extent[];
  srcLength?: number;
  dstExtents: Extent[];
  dstLength?: number;
  dataSha256Hash?: Uint8Array;
}

export interface InstallInfo {
  size?: number;
  hash?: Uint8Array;
}

export enum ProcedureType {
  KERNEL = 0,
  PCR_POLICY = 1,
}

export interface InstallProcedure {
  type?: ProcedureType;
  operations: InstallOperation[];
  oldInfo?: InstallInfo;
  newInfo?: InstallInfo;
}

export interface DeltaArchiveManifest {
  partitionOperations: InstallOperation[];
  noopOperations: InstallOperation[];
  blockSize?: number;
  signaturesOffset?: number;
  signaturesSize?: number;
  oldPartitionInfo?: InstallInfo;
  newPartitionInfo?: InstallInfo;
  procedures: InstallProcedure[];
}

export interface Signature {
  version?: number;
  data?: Uint8Array;
}

export interface Signatures {
  signatures: Signature[];
}

export class ProtoError extends Error {}

// ---------------------------------------------------------------------------------------------
// Wire writer

class Writer {
  private parts: number[] = [];
  private chunks: Uint8Array[] = [];
  private size = 0;

  private flushBytes(): void {
    if (this.parts.length === 0) return;
    this.chunks.push(Uint8Array.from(this.parts));
    this.parts = [];
  }

  varint(v: number | bigint): void {
    let n = BigInt(v);
    if (n < 0n || n > UINT64_MAX) throw new ProtoError(`varint out of range: ${v}`);
    do {
      let byte = Number(n & 0x7fn);
      n >>= 7n;
      if (n !== 0n) byte |= 0x80;
      this.parts.push(byte);
      this.size++;
    } while (n !== 0n);
  }

  tag(field: number, wire: 0 | 2): void {
    this.varint((field << 3) | wire);
  }

  uint(field: number, v: number | bigint | undefined): void {
    if (v === undefined) return;
    this.tag(field, 0);
    this.varint(v);
  }

  bytes(field: number, b: Uint8Array | undefined): void {
    if (b === undefined) return;
    this.tag(field, 2);
    this.varint(b.length);
    this.flushBytes();
    this.chunks.push(b);
    this.size += b.length;
  }

  finish(): Uint8Array {
    this.flushBytes();
    const out = new Uint8Array(this.size);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }
}

function message<T>(enc: (w: Writer, m: T) => void): (m: T) => Uint8Array {
  return (m) => {
    const w = new Writer();
    enc(w, m);
    return w.finish();
  };
}

export const encodeExtent = message<Extent>((w, e) => {
  w.uint(1, e.startBlock === HOLE ? UINT64_MAX : e.startBlock);
  w.uint(2, e.numBlocks);
});

export const encodeOperation = message<InstallOperation>((w, op) => {
  w.uint(1, op.type); // required: always present, even REPLACE = 0
  w.uint(2, op.dataOffset);
  w.uint(3, op.dataLength);
  for (const e of op.srcExtents) w.bytes(4, encodeExtent(e));
  w.uint(5, op.srcLength);
  for (const e of op.dstExtents) w.bytes(6, encodeExtent(e));
  w.uint(7, op.dstLength);
  w.bytes(8, op.dataSha256Hash);
});

const encodeInstallInfo = message<InstallInfo>((w, i) => {
  w.uint(1, i.size);
  w.bytes(2, i.hash);
});

const encodeProcedure = message<InstallProcedure>((w, p) => {
  w.uint(1, p.type);
  for (const op of p.operations) w.bytes(2, encodeOperation(op));
  if (p.oldInfo) w.bytes(3, encodeInstallInfo(p.oldInfo));
  if (p.newInfo) w.bytes(4, encodeInstallInfo(p.newInfo));
});

export const encodeManifest = message<DeltaArchiveManifest>((w, m) => {
  for (const op of m.partitionOperations) w.bytes(1, encodeOperation(op));
  for (const op of m.noopOperations) w.bytes(2, encodeOperation(op));
  w.uint(3, m.blockSize);
  w.uint(4, m.signaturesOffset);
  w.uint(5, m.signaturesSize);
  if (m.oldPartitionInfo) w.bytes(8, encodeInstallInfo(m.oldPartitionInfo));
  if (m.newPartitionInfo) w.bytes(9, encodeInstallInfo(m.newPartitionInfo));
  for (const p of m.procedures) w.bytes(10, encodeProcedure(p));
});

export const encodeSignatures = message<Signatures>((w, s) => {
  for (const sig of s.signatures) {
    const inner = new Writer();
    inner.uint(1, sig.version);
    inner.bytes(2, sig.data);
    w.bytes(1, inner.finish());
  }
});

// ---------------------------------------------------------------------------------------------
// Wire reader

class Reader {
  pos = 0;
  constructor(
    private readonly buf: Uint8Array,
    private readonly what: string,
  ) {}

  get done(): boolean {
    return this.pos >= this.buf.length;
  }

  fail(msg: string): never {
    throw new ProtoError(`${this.what}: ${msg} at byte ${this.pos}`);
  }

  varint(): bigint {
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.buf.length) this.fail("truncated varint");
      const b = this.buf[this.pos++]!;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result & UINT64_MAX;
      shift += 7n;
    }
    this.fail("varint longer than 10 bytes");
  }

  bytes(): Uint8Array {
    const len = this.varint();
    const end = this.pos + Number(len);
    if (len > BigInt(this.buf.length) || end > this.buf.length) this.fail("length-delimited field runs past the end");
    const out = this.buf.subarray(this.pos, end);
    this.pos = end;
    return out;
  }

  skip(wire: number): void {
    switch (wire) {
      case 0: this.varint(); return;
      case 1: this.advance(8); return;
      case 2: this.bytes(); return;
      case 5: this.advance(4); return;
      default: this.fail(`unsupported wire type ${wire}`);
    }
  }

  private advance(n: number): void {
    if (this.pos + n > this.buf.length) this.fail("truncated fixed field");
    this.pos += n;
  }

  /** Calls `field` for each field; it returns false for fields it does not know (skipped). */
  each(field: (num: number, wire: number) => boolean): void {
    while (!this.done) {
      const key = this.varint();
      const num = Number(key >> 3n);
      const wire = Number(key & 7n);
      if (num === 0) this.fail("field number 0");
      if (!field(num, wire)) this.skip(wire);
    }
  }

  expect(wire: number, want: number, name: string): void {
    if (wire !== want) this.fail(`field ${name} has wire type ${wire}, expected ${want}`);
  }

  safe(name: string): number {
    const v = this.varint();
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${name} ${v} too large`);
    return Number(v);
  }

  uint32(name: string): number {
    const v = this.varint();
    if (v > 0xffff_ffffn) this.fail(`${name} ${v} does not fit uint32`);
    return Number(v);
  }
}

export function decodeExtent(buf: Uint8Array): Extent {
  const r = new Reader(buf, "Extent");
  const e: Extent = { startBlock: 0, numBlocks: 0 };
  r.each((n, w) => {
    if (n === 1) {
      r.expect(w, 0, "start_block");
      const v = r.varint();
      if (v === UINT64_MAX) e.startBlock = HOLE;
      else if (v > BigInt(Number.MAX_SAFE_INTEGER)) r.fail(`start_block ${v} too large`);
      else e.startBlock = Number(v);
    } else if (n === 2) {
      r.expect(w, 0, "num_blocks");
      e.numBlocks = r.safe("num_blocks");
    } else return false;
    return true;
  });
  return e;
}

export function decodeOperation(buf: Uint8Array): InstallOperation {
  const r = new Reader(buf, "InstallOperation");
  let type: number | undefined;
  const op: Omit<InstallOperation, "type"> = { srcExtents: [], dstExtents: [] };
  r.each((n, w) => {
    switch (n) {
      case 1: r.expect(w, 0, "type"); type = r.uint32("type"); break;
      case 2: r.expect(w, 0, "data_offset"); op.dataOffset = r.uint32("data_offset"); break;
      case 3: r.expect(w, 0, "data_length"); op.dataLength = r.uint32("data_length"); break;
      case 4: r.expect(w, 2, "src_extents"); op.srcExtents.push(decodeExtent(r.bytes())); break;
      case 5: r.expect(w, 0, "src_length"); op.srcLength = r.safe("src_length"); break;
      case 6: r.expect(w, 2, "dst_extents"); op.dstExtents.push(decodeExtent(r.bytes())); break;
      case 7: r.expect(w, 0, "dst_length"); op.dstLength = r.safe("dst_length"); break;
      case 8: r.expect(w, 2, "data_sha256_hash"); op.dataSha256Hash = r.bytes(); break;
      default: return false;
    }
    return true;
  });
  const t = type as number | undefined;
  if (t === undefined) return r.fail("required field type missing");
  if (!(t in OpType)) r.fail(`unknown operation type ${t}`);
  return { type: t as OpType, ...op };
}

function decodeInstallInfo(buf: Uint8Array): InstallInfo {
  const r = new Reader(buf, "InstallInfo");
  const i: InstallInfo = {};
  r.each((n, w) => {
    if (n === 1) { r.expect(w, 0, "size"); i.size = r.safe("size"); }
    else if (n === 2) { r.expect(w, 2, "hash"); i.hash = r.bytes(); }
    else return false;
    return true;
  });
  return i;
}

function decodeProcedure(buf: Uint8Array): InstallProcedure {
  const r = new Reader(buf, "InstallProcedure");
  const p: InstallProcedure = { operations: [] };
  r.each((n, w) => {
    switch (n) {
      case 1: r.expect(w, 0, "type"); p.type = r.uint32("type"); break;
      case 2: r.expect(w, 2, "operations"); p.operations.push(decodeOperation(r.bytes())); break;
      case 3: r.expect(w, 2, "old_info"); p.oldInfo = decodeInstallInfo(r.bytes()); break;
      case 4: r.expect(w, 2, "new_info"); p.newInfo = decodeInstallInfo(r.bytes()); break;
      default: return false;
    }
    return true;
  });
  return p;
}

export function decodeManifest(buf: Uint8Array): DeltaArchiveManifest {
  const r = new Reader(buf, "DeltaArchiveManifest");
  const m: DeltaArchiveManifest = { partitionOperations: [], noopOperations: [], procedures: [] };
  r.each((n, w) => {
    switch (n) {
      case 1: r.expect(w, 2, "partition_operations"); m.partitionOperations.push(decodeOperation(r.bytes())); break;
      case 2: r.expect(w, 2, "noop_operations"); m.noopOperations.push(decodeOperation(r.bytes())); break;
      case 3: r.expect(w, 0, "block_size"); m.blockSize = r.uint32("block_size"); break;
      case 4: r.expect(w, 0, "signatures_offset"); m.signaturesOffset = r.safe("signatures_offset"); break;
      case 5: r.expect(w, 0, "signatures_size"); m.signaturesSize = r.safe("signatures_size"); break;
      case 8: r.expect(w, 2, "old_partition_info"); m.oldPartitionInfo = decodeInstallInfo(r.bytes()); break;
      case 9: r.expect(w, 2, "new_partition_info"); m.newPartitionInfo = decodeInstallInfo(r.bytes()); break;
      case 10: r.expect(w, 2, "procedures"); m.procedures.push(decodeProcedure(r.bytes())); break;
      default: return false;
    }
    return true;
  });
  return m;
}

export function decodeSignatures(buf: Uint8Array): Signatures {
  const r = new Reader(buf, "Signatures");
  const s: Signatures = { signatures: [] };
  r.each((n, w) => {
    if (n !== 1) return false;
    r.expect(w, 2, "signatures");
    const sr = new Reader(r.bytes(), "Signature");
    const sig: Signature = {};
    sr.each((sn, sw) => {
      if (sn === 1) { sr.expect(sw, 0, "version"); sig.version = sr.uint32("version"); }
      else if (sn === 2) { sr.expect(sw, 2, "data"); sig.data = sr.bytes(); }
      else return false;
      return true;
    });
    s.signatures.push(sig);
    return true;
  });
  return s;
}

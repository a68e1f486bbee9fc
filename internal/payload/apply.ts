// The streaming applier: bytes go in as they arrive, each operation is handed to a worker thread
// as soon as its blob is complete, and no more than a few blobs are held in memory (callers await
// drain() between chunks). Whole-file SHA-256 (the Omaha hash) and the signed-prefix SHA-256 come
// from one pass on the main thread: the running hash is copied at the start of the signatures
// blob. The target is good only after finish() has checked the payload hash, the signature and
// the read-back partition hash.
import { createHash, timingSafeEqual, type Hash, type KeyObject } from "node:crypto";
import { closeSync, constants as fsc, fstatSync, fsyncSync, ftruncateSync, openSync, readSync } from "node:fs";
import { PayloadError } from "./errors.ts";
import type { OpJob, OpOutcome } from "./exec.ts";
import { b64, DEFAULT_BLOCK_SIZE, HEADER_SIZE, hex, parseHeader, SIGNATURE_VERSION, verifyDigest } from "./format.ts";
import { DEFAULT_THREADS, OpRunner } from "./pool.ts";
import {
  decodeManifest,
  decodeSignatures,
  HOLE,
  OpType,
  ProcedureType,
  ProtoError,
  type DeltaArchiveManifest,
  type InstallInfo,
  type InstallOperation,
  type Signatures,
} from "./proto.ts";

/** A partition: a whole file or block device, or `length` bytes of one starting at `offset`. */
export interface PartitionTarget {
  path: string;
  offset?: number;
  length?: number;
}

export interface ApplyOptions {
  /** Where the partition operations write; without it the payload is only checked. */
  target?: PartitionTarget;
  /** Where the KERNEL procedure writes (e.g. /boot/flatcar/vmlinuz-b); without it the kernel is only checked. */
  kernelPath?: string;
  /** Without a key the signature is not checked (update_engine's behaviour when the key file is missing). */
  publicKey?: KeyObject;
  /** The Omaha response's size and raw SHA-256 of the whole file. */
  expectedSize?: number;
  expectedSha256?: Uint8Array;
  /** Worker threads for the operations (0: run them on the calling thread). */
  threads?: number;
}

type DestKind = "partition" | "kernel" | "none";

export interface PlannedOp {
  /** Position in blob order (the order they are applied in). */
  index: number;
  op: InstallOperation;
  dest: DestKind;
  /** Absolute offset of the blob in the payload file. */
  start: number;
  length: number;
  /** Whether the blob can be read back from where it was written (a REPLACE onto a file). */
  readBack: boolean;
}

export interface ApplyResult {
  /** Size and raw SHA-256 of the whole payload file. */
  size: number;
  sha256: Uint8Array;
  /** Raw SHA-256 of the written (or, verify-only, announced) partition. */
  partitionHash: Uint8Array;
  partitionSize: number;
  kernelHash?: Uint8Array;
  signatureChecked: boolean;
  operations: number;
}

interface Dest {
  fd: number;
  offset: number;
  /** Bytes available to the operations (Infinity for a plain file that may grow). */
  length: number;
}

type Phase = "header" | "manifest" | "ops" | "signatures" | "done";

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

function readAll(fd: number, into: Uint8Array, pos: number): void {
  let done = 0;
  while (done < into.length) {
    const n = readSync(fd, into, done, into.length - done, pos + done);
    if (n === 0) {
      into.fill(0, done); // past the end of a sparse/short file reads as zeros
      return;
    }
    done += n;
  }
}

/** SHA-256 of `size` bytes of fd from `offset`, in 4 MiB reads. */
function hashRange(fd: number, offset: number, size: number): Uint8Array {
  const h = createHash("sha256");
  const buf = new Uint8Array(Math.min(4 << 20, Math.max(size, 1)));
  for (let done = 0; done < size; ) {
    const want = Math.min(buf.length, size - done);
    const n = readSync(fd, buf, 0, want, offset + done);
    if (n === 0) throw new PayloadError("partition-hash", `partition ends after ${done} of ${size} bytes`);
    h.update(buf.subarray(0, n));
    done += n;
  }
  return h.digest();
}

function openDest(path: string, offset: number, length: number | undefined, what: "target" | "kernel"): Dest {
  let fd: number;
  try {
    fd = openSync(path, fsc.O_RDWR | fsc.O_CREAT, 0o644);
  } catch (e) {
    throw new PayloadError("target-open", `cannot open the ${what} ${path}: ${(e as Error).message}`);
  }
  return { fd, offset, length: length ?? Infinity };
}

export class Applier {
  readonly blockSize: number = DEFAULT_BLOCK_SIZE;
  manifest?: DeltaArchiveManifest;
  /** Header + manifest bytes, kept for resume. */
  metadata?: Uint8Array;
  ops: PlannedOp[] = [];
  /** Operations whose blobs were received (and handed to a worker, or replayed), in blob order. */
  opsReceived = 0;
  /** Leading operations that are applied for sure (applied or replayed): what a resume may skip. */
  opsDone = 0;
  /** Payload bytes consumed so far. */
  position = 0;
  /** Total payload size once the manifest is known. */
  total?: number;
  /** Called with each blob as it is handed out (the resume state keeps the ones that cannot be read back). */
  onOpReceived?: (op: PlannedOp, blob: Uint8Array) => void;
  /** Called when opsDone grows. */
  onOpsDone?: () => void;

  private phase: Phase = "header";
  private need = HEADER_SIZE;
  private have = 0;
  private buf: Uint8Array = new Uint8Array(HEADER_SIZE);
  private readonly finishedOps: boolean[] = [];
  /**
   * When the partition operations write the partition front to back (every full payload does),
   * the written partition is read back and hashed as the operations complete, instead of in one
   * pass at the end.
   */
  private readBackHash?: { hash: Hash; bytes: number };
  /** Reused for the read-back (a fresh array per operation costs page faults). */
  private readBuf = new Uint8Array(0);
  private failure?: PayloadError;
  private readonly runner: OpRunner;
  private readonly fileHash = createHash("sha256");
  private signedDigest?: Uint8Array;
  private signatures?: Signatures;
  private header?: Uint8Array;
  private metadataSize = 0;
  private partition?: Dest;
  private kernel?: Dest;
  private kernelInfo?: InstallInfo;

  constructor(private readonly opts: ApplyOptions = {}) {
    if (opts.target) this.partition = openDest(opts.target.path, opts.target.offset ?? 0, opts.target.length, "target");
    try {
      if (opts.kernelPath) this.kernel = openDest(opts.kernelPath, 0, undefined, "kernel");
    } catch (e) {
      if (this.partition) closeSync(this.partition.fd);
      throw e;
    }
    this.runner = new OpRunner(opts.threads ?? DEFAULT_THREADS, (o) => this.opFinished(o));
  }

  get done(): boolean {
    return this.phase === "done";
  }

  /** Waits for the operations in flight (they write to our file descriptors), then releases everything. */
  async close(): Promise<void> {
    await this.settle();
    this.runner.close();
    if (this.partition) closeSync(this.partition.fd);
    if (this.kernel) closeSync(this.kernel.fd);
    this.partition = this.kernel = undefined;
  }

  /** Resolves when no operation is in flight (whether they succeeded or not). */
  settle(): Promise<void> {
    return this.runner.idle();
  }

  /** Backpressure: resolves when the workers can take more (rejects with an operation's failure). */
  async drain(): Promise<void> {
    await this.runner.ready();
    if (this.failure) throw this.failure;
  }

  private opFinished(o: OpOutcome): void {
    if (o.error) {
      this.failure ??= new PayloadError(o.error.check, o.error.message);
      return;
    }
    this.finishedOps[o.index] = true;
    const before = this.opsDone;
    this.advance();
    if (this.opsDone > before) this.onOpsDone?.();
  }

  private advance(): void {
    while (this.finishedOps[this.opsDone]) {
      const p = this.ops[this.opsDone]!;
      const rb = this.readBackHash;
      if (rb && p.dest === "partition") {
        try {
          rb.bytes = this.hashExtents(rb.hash, rb.bytes, p);
        } catch (e) {
          this.failure ??= new PayloadError("partition-hash", `reading back the partition: ${(e as Error).message}`);
        }
      }
      this.opsDone++;
    }
  }

  /** Feeds the operation's written blocks (up to the new partition size) to the read-back hash. */
  private hashExtents(hash: Hash, hashed: number, p: PlannedOp): number {
    const size = this.manifest!.newPartitionInfo!.size ?? 0;
    const d = this.partition!;
    for (const e of p.op.dstExtents) {
      const bytes = Math.min(e.numBlocks * this.blockSize, size - hashed);
      if (bytes <= 0) break;
      if (this.readBuf.length < bytes) this.readBuf = new Uint8Array(bytes);
      const buf = this.readBuf.subarray(0, bytes);
      readAll(d.fd, buf, d.offset + (e.startBlock as number) * this.blockSize);
      hash.update(buf);
      hashed += bytes;
    }
    return hashed;
  }

  /** Whether the partition operations, in blob order, write blocks 0, 1, 2, ... exactly once. */
  private frontToBack(): boolean {
    let next = 0;
    for (const p of this.ops) {
      if (p.dest !== "partition") continue;
      for (const e of p.op.dstExtents) {
        if (e.startBlock !== next) return false;
        next += e.numBlocks;
      }
    }
    return next * this.blockSize >= (this.manifest!.newPartitionInfo?.size ?? 0);
  }

  push(chunk: Uint8Array): void {
    if (this.failure) throw this.failure;
    let i = 0;
    while (i < chunk.length) {
      if (this.phase === "done") {
        throw new PayloadError("size", `payload is longer than its manifest says: extra data after byte ${this.position}`);
      }
      const n = Math.min(this.need - this.have, chunk.length - i);
      const piece = chunk.subarray(i, i + n);
      i += n;
      this.consumed(piece);
      let item: Uint8Array;
      if (this.have === 0 && n === this.need) {
        item = piece; // the whole item inside this chunk: no copy
      } else {
        this.buf.set(piece, this.have);
        this.have += n;
        if (this.have < this.need) continue;
        item = this.buf.subarray(0, this.need);
      }
      this.have = 0;
      this.complete(item);
    }
  }

  private consumed(piece: Uint8Array): void {
    this.fileHash.update(piece);
    this.position += piece.length;
    const limit = this.opts.expectedSize;
    if (limit !== undefined && this.position > limit) {
      throw new PayloadError("size", `payload is larger than the expected ${limit} bytes`);
    }
  }

  private expect(n: number): void {
    this.need = n;
    this.have = 0;
    if (this.buf.length < n) this.buf = this.runner.spare(n) ?? new Uint8Array(n);
  }

  private complete(item: Uint8Array): void {
    switch (this.phase) {
      case "header":
        this.header = item.slice();
        this.phase = "manifest";
        this.expect(parseHeader(item));
        return;
      case "manifest":
        this.metadata = new Uint8Array(HEADER_SIZE + item.length);
        this.metadata.set(this.header!, 0);
        this.metadata.set(item, HEADER_SIZE);
        this.metadataSize = this.metadata.length;
        // Decoded fields are views into their buffer: decode from our own copy, not the caller's chunk.
        this.plan(this.metadata.subarray(HEADER_SIZE));
        this.nextStage();
        return;
      case "ops": {
        const p = this.ops[this.opsReceived]!;
        this.onOpReceived?.(p, item);
        this.dispatch(p, item);
        this.opsReceived++;
        this.nextStage();
        return;
      }
      case "signatures":
        try {
          this.signatures = decodeSignatures(item.slice());
        } catch (e) {
          throw new PayloadError("signature-missing", `signatures blob cannot be parsed: ${(e as Error).message}`);
        }
        this.phase = "done";
        return;
      case "done":
        return;
    }
  }

  /** Moves on to the next blob (or the signatures, or the end), completing empty ones at once. */
  private nextStage(): void {
    for (;;) {
      if (this.opsReceived < this.ops.length) {
        this.phase = "ops";
        const p = this.ops[this.opsReceived]!;
        if (p.length > 0) return this.expect(p.length);
        this.dispatch(p, new Uint8Array(0));
        this.opsReceived++;
        continue;
      }
      // The signed range ends here: everything before the signatures blob.
      if (!this.signedDigest) this.signedDigest = this.fileHash.copy().digest();
      const size = this.manifest!.signaturesSize ?? 0;
      if (this.manifest!.signaturesOffset !== undefined && size > 0) {
        this.phase = "signatures";
        return this.expect(size);
      }
      this.phase = "done";
      return;
    }
  }

  private plan(manifestBytes: Uint8Array): void {
    let m: DeltaArchiveManifest;
    try {
      m = decodeManifest(manifestBytes);
    } catch (e) {
      throw new PayloadError("manifest", e instanceof ProtoError ? e.message : String(e));
    }
    this.manifest = m;
    const bs = m.blockSize ?? DEFAULT_BLOCK_SIZE;
    if (bs < 512 || (bs & (bs - 1)) !== 0) throw new PayloadError("manifest", `block_size ${bs} is not a power of two >= 512`);
    (this as { blockSize: number }).blockSize = bs;
    if (this.partition && !m.newPartitionInfo?.hash) {
      throw new PayloadError("partition-info", "manifest has no new_partition_info hash to check the partition against");
    }
    const newSize = m.newPartitionInfo?.size ?? 0;
    if (this.partition && newSize > this.partition.length) {
      throw new PayloadError("partition-info", `new partition is ${newSize} bytes but the target has room for ${this.partition.length}`);
    }
    if (this.opts.publicKey && (m.signaturesOffset === undefined || !m.signaturesSize)) {
      throw new PayloadError("signature-missing", "payload is not signed (manifest has no signatures_offset/signatures_size)");
    }

    const planned: Omit<PlannedOp, "index" | "start">[] = [];
    for (const op of m.partitionOperations) planned.push(this.planOp(op, "partition"));
    for (const proc of m.procedures) {
      const isKernel = proc.type === undefined || proc.type === ProcedureType.KERNEL;
      if (isKernel) this.kernelInfo = proc.newInfo;
      for (const op of proc.operations) planned.push(this.planOp(op, isKernel ? "kernel" : "none"));
    }
    // Blobs are consumed in file order; update_engine requires them in order and without gaps.
    planned.sort((a, b) => a.op.dataOffset! - b.op.dataOffset!);
    let cursor = 0;
    this.ops = planned.map((p, index) => {
      if (p.op.dataOffset !== cursor) {
        throw new PayloadError("manifest", `operation ${index} data starts at blob offset ${p.op.dataOffset}, expected ${cursor} (blobs must follow each other)`);
      }
      cursor += p.length;
      return { ...p, index, start: this.metadataSize + p.op.dataOffset };
    });
    if (m.signaturesOffset !== undefined && m.signaturesOffset !== cursor) {
      throw new PayloadError("manifest", `signatures blob at offset ${m.signaturesOffset}, expected ${cursor} (right after the last operation)`);
    }
    this.total = this.metadataSize + cursor + (m.signaturesOffset !== undefined ? (m.signaturesSize ?? 0) : 0);
    if (this.partition && this.frontToBack()) this.readBackHash = { hash: createHash("sha256"), bytes: 0 };
    const want = this.opts.expectedSize;
    if (want !== undefined && this.total !== want) {
      throw new PayloadError("size", `payload manifest describes ${this.total} bytes but ${want} were expected`);
    }
  }

  private planOp(op: InstallOperation, dest: DestKind): Omit<PlannedOp, "index" | "start"> {
    if (op.type !== OpType.REPLACE && op.type !== OpType.REPLACE_BZ) {
      throw new PayloadError("operation", `${OpType[op.type]} operations are delta operations; only full payloads (REPLACE, REPLACE_BZ) are supported`);
    }
    if (op.dataOffset === undefined || op.dataLength === undefined) {
      throw new PayloadError("manifest", `${OpType[op.type]} operation without data_offset/data_length`);
    }
    const d = dest === "partition" ? this.partition : dest === "kernel" ? this.kernel : undefined;
    const effective: DestKind = d ? dest : "none";
    return { op, dest: effective, length: op.dataLength, readBack: op.type === OpType.REPLACE && d !== undefined };
  }

  private destOf(p: PlannedOp): Dest | undefined {
    return p.dest === "partition" ? this.partition : p.dest === "kernel" ? this.kernel : undefined;
  }

  /**
   * A blob the worker can own: it is moved there, and a view would drag its whole buffer along.
   * The assembly buffer itself is handed over (the next blob gets one the workers gave back, or a
   * fresh one); a view into the caller's chunk is copied.
   */
  private own(blob: Uint8Array): Uint8Array {
    if (blob.buffer === this.buf.buffer) {
      this.buf = new Uint8Array(0);
      return blob;
    }
    return blob.slice();
  }

  private dispatch(p: PlannedOp, blob: Uint8Array): void {
    const d = this.destOf(p);
    const job: OpJob = {
      index: p.index,
      type: p.op.type === OpType.REPLACE_BZ ? 1 : 0,
      blob: this.own(blob),
      sha256: p.op.dataSha256Hash?.slice(),
      start: p.start,
      fd: d ? d.fd : -1,
      destName: p.dest,
      destOffset: d ? d.offset : 0,
      destLength: d && Number.isFinite(d.length) ? d.length : -1,
      blockSize: this.blockSize,
      extents: p.op.dstExtents.map((e) => [e.startBlock === HOLE ? -1 : e.startBlock, e.numBlocks]),
    };
    this.runner.run(job);
  }

  /** The blob of an applied REPLACE, read back from where it was written. */
  readBackBlob(p: PlannedOp): Uint8Array {
    const d = this.destOf(p);
    if (!p.readBack || !d) throw new Error(`operation ${p.index} cannot be read back`);
    const out = new Uint8Array(p.length);
    let off = 0;
    for (const e of p.op.dstExtents) {
      if (off >= out.length) break;
      const bytes = Math.min(e.numBlocks * this.blockSize, out.length - off);
      if (e.startBlock !== HOLE) readAll(d.fd, out.subarray(off, off + bytes), d.offset + e.startBlock * this.blockSize);
      off += bytes;
    }
    return out;
  }

  /**
   * Resume: accounts for the next operation as already applied, given its blob as rebuilt from
   * the target or the kept copy. False (nothing changed) unless the blob provably is the
   * payload's: it must match the operation's SHA-256.
   */
  replayApplied(blob: Uint8Array): boolean {
    if (this.phase !== "ops" || this.have !== 0 || this.opsDone !== this.opsReceived) return false;
    const p = this.ops[this.opsReceived]!;
    const want = p.op.dataSha256Hash;
    if (!want || blob.length !== p.length) return false;
    if (!sameBytes(createHash("sha256").update(blob).digest(), want)) return false;
    this.consumed(blob);
    this.finishedOps[p.index] = true;
    this.opsReceived++;
    this.advance();
    this.nextStage();
    return true;
  }

  /** Checks what only the end can tell, in update_engine's order: size, payload hash, signature, partition, kernel. */
  async finish(): Promise<ApplyResult> {
    await this.settle();
    if (this.failure) throw this.failure;
    if (this.phase !== "done") {
      const total = this.opts.expectedSize ?? this.total;
      throw new PayloadError("size", `payload truncated: got ${this.position} of ${total ?? "at least " + (this.position + this.need - this.have)} bytes`);
    }
    const sha256 = this.fileHash.digest();
    const want = this.opts.expectedSha256;
    if (want && !sameBytes(sha256, want)) {
      throw new PayloadError("payload-hash", `payload SHA-256 is ${b64(sha256)} (base64), expected ${b64(want)}`);
    }
    const m = this.manifest!;
    let signatureChecked = false;
    if (this.opts.publicKey) {
      const sig = this.signatures?.signatures.find((s) => s.version === SIGNATURE_VERSION);
      if (!sig?.data) {
        const versions = this.signatures?.signatures.map((s) => s.version).join(", ") || "none";
        throw new PayloadError("signature-missing", `payload has no version-${SIGNATURE_VERSION} signature (versions present: ${versions})`);
      }
      if (!verifyDigest(this.signedDigest!, sig.data, this.opts.publicKey)) {
        throw new PayloadError("signature", "payload signature does not verify with the public key (wrong key, or the payload was altered)");
      }
      signatureChecked = true;
    }
    const info = m.newPartitionInfo;
    let partitionHash = info?.hash ?? new Uint8Array(0);
    const partitionSize = info?.size ?? 0;
    if (this.partition) {
      const rb = this.readBackHash;
      const done = rb && rb.bytes === (info!.size ?? 0) ? rb.hash.digest() : undefined;
      partitionHash = this.checkWritten(this.partition, info!, "partition-hash", "partition", done);
    }
    let kernelHash = this.kernelInfo?.hash;
    if (this.kernel && this.kernelInfo?.hash) {
      kernelHash = this.checkWritten(this.kernel, this.kernelInfo, "kernel-hash", "kernel");
      ftruncateSync(this.kernel.fd, this.kernelInfo.size ?? fstatSync(this.kernel.fd).size);
    }
    return { size: this.position, sha256, partitionHash, partitionSize, kernelHash, signatureChecked, operations: this.ops.length };
  }

  /** fsync, then the read-back hash (computed here unless `hashed` already has it) against the manifest. */
  private checkWritten(d: Dest, info: InstallInfo, check: "partition-hash" | "kernel-hash", what: string, hashed?: Uint8Array): Uint8Array {
    try {
      fsyncSync(d.fd);
    } catch (e) {
      throw new PayloadError("write", `flushing the ${what}: ${(e as Error).message}`);
    }
    const got = hashed ?? hashRange(d.fd, d.offset, info.size ?? 0);
    if (info.hash && !sameBytes(got, info.hash)) {
      throw new PayloadError(check, `written ${what} SHA-256 ${hex(got)} does not match the manifest's ${hex(info.hash)}`);
    }
    return got;
  }
}

// Payload files on disk: verify one, or apply one onto a partition.
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { Applier, type ApplyOptions, type ApplyResult, type PartitionTarget } from "./apply.ts";
import { PayloadError } from "./errors.ts";
import { HEADER_SIZE, loadPublicKey, parseHeader } from "./format.ts";
import { decodeManifest, decodeSignatures, type DeltaArchiveManifest, type Signatures } from "./proto.ts";

const READ_SIZE = 1 << 20;

function openPayload(path: string): number {
  try {
    return openSync(path, "r");
  } catch (e) {
    throw new PayloadError("transfer", `cannot open ${path}: ${(e as Error).message}`);
  }
}

async function feed(path: string, applier: Applier, onProgress?: (done: number) => void): Promise<void> {
  const fd = openPayload(path);
  try {
    const buf = new Uint8Array(READ_SIZE);
    for (let pos = 0; ; ) {
      const n = readSync(fd, buf, 0, READ_SIZE, pos);
      if (n === 0) return;
      applier.push(buf.subarray(0, n));
      await applier.drain();
      pos += n;
      onProgress?.(pos);
    }
  } finally {
    closeSync(fd);
  }
}

export interface FileCheckOptions {
  /** Without a key the signature is not checked. */
  publicKeyPem?: string;
  size?: number;
  sha256?: Uint8Array;
  onProgress?: (bytesDone: number, total: number) => void;
}

export interface VerifyResult extends ApplyResult {
  manifest: DeltaArchiveManifest;
  metadataSize: number;
}

function options(o: FileCheckOptions): ApplyOptions {
  return {
    publicKey: o.publicKeyPem !== undefined ? loadPublicKey(o.publicKeyPem) : undefined,
    expectedSize: o.size,
    expectedSha256: o.sha256,
  };
}

/** Checks layout, every operation's hash and bzip2 data, the payload hash and the signature, writing nothing. */
export async function verifyPayload(path: string, o: FileCheckOptions = {}): Promise<VerifyResult> {
  const applier = new Applier(options(o));
  try {
    await feed(path, applier, (n) => o.onProgress?.(n, applier.total ?? 0));
    const r = await applier.finish();
    return { ...r, manifest: applier.manifest!, metadataSize: applier.metadata!.length };
  } finally {
    await applier.close();
  }
}

/** Applies a payload file onto a partition and checks the written partition against the manifest. */
export async function applyPayloadFile(path: string, target: PartitionTarget, o: FileCheckOptions & { kernelPath?: string } = {}): Promise<ApplyResult> {
  const applier = new Applier({ ...options(o), target, kernelPath: o.kernelPath });
  try {
    await feed(path, applier, (n) => o.onProgress?.(n, applier.total ?? 0));
    return await applier.finish();
  } finally {
    await applier.close();
  }
}

export interface PayloadInfo {
  fileSize: number;
  version: bigint;
  metadataSize: number;
  manifest: DeltaArchiveManifest;
  signatures?: Signatures;
}

/** Reads only the header, the manifest and the signatures blob (for `payload show`). */
export function inspectPayload(path: string): PayloadInfo {
  const fd = openPayload(path);
  try {
    const fileSize = fstatSync(fd).size;
    const at = (pos: number, len: number, what: string): Uint8Array => {
      const b = new Uint8Array(len);
      if (readSync(fd, b, 0, len, pos) !== len) throw new PayloadError("size", `${path} ends inside the ${what} (file is ${fileSize} bytes)`);
      return b;
    };
    const header = at(0, HEADER_SIZE, "header");
    const manifestSize = parseHeader(header);
    let manifest: DeltaArchiveManifest;
    try {
      manifest = decodeManifest(at(HEADER_SIZE, manifestSize, "manifest"));
    } catch (e) {
      if (e instanceof PayloadError) throw e;
      throw new PayloadError("manifest", (e as Error).message);
    }
    const metadataSize = HEADER_SIZE + manifestSize;
    let signatures: Signatures | undefined;
    if (manifest.signaturesOffset !== undefined && manifest.signaturesSize) {
      const blob = at(metadataSize + manifest.signaturesOffset, manifest.signaturesSize, "signatures blob");
      try {
        signatures = decodeSignatures(blob);
      } catch (e) {
        throw new PayloadError("signature-missing", `signatures blob cannot be parsed: ${(e as Error).message}`);
      }
    }
    const version = new DataView(header.buffer).getBigUint64(4);
    return { fileSize, version, metadataSize, manifest, signatures };
  } finally {
    closeSync(fd);
  }
}

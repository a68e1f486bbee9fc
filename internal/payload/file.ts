// Payload files on disk: verify one, or apply one onto a partition.
import { closeSync, openSync, readSync } from "node:fs";
import { Applier, type ApplyOptions, type ApplyResult, type PartitionTarget } from "./apply.ts";
import { PayloadError } from "./errors.ts";
import { loadPublicKey } from "./format.ts";
import type { DeltaArchiveManifest } from "./proto.ts";

const READ_SIZE = 1 << 20;

function feed(path: string, applier: Applier, onProgress?: (done: number) => void): void {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    throw new PayloadError("transfer", `cannot open ${path}: ${(e as Error).message}`);
  }
  try {
    const buf = new Uint8Array(READ_SIZE);
    for (let pos = 0; ; ) {
      const n = readSync(fd, buf, 0, READ_SIZE, pos);
      if (n === 0) return;
      applier.push(buf.subarray(0, n));
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
export function verifyPayload(path: string, o: FileCheckOptions = {}): VerifyResult {
  const applier = new Applier(options(o));
  feed(path, applier, (n) => o.onProgress?.(n, applier.total ?? 0));
  const r = applier.finish();
  return { ...r, manifest: applier.manifest!, metadataSize: applier.metadata!.length };
}

/** Applies a payload file onto a partition and checks the written partition against the manifest. */
export function applyPayloadFile(path: string, target: PartitionTarget, o: FileCheckOptions & { kernelPath?: string } = {}): ApplyResult {
  const applier = new Applier({ ...options(o), target, kernelPath: o.kernelPath });
  try {
    feed(path, applier, (n) => o.onProgress?.(n, applier.total ?? 0));
    return applier.finish();
  } finally {
    applier.close();
  }
}

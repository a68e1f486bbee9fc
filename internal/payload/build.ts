// Full-payload generation as Flatcar's delta_generator does it (spec §3.4): the image cut into
// 1 MiB REPLACE/REPLACE_BZ operations, the kernel as a KERNEL procedure, the signatures dummy
// operation, and an RSA-2048 PKCS#1 v1.5 SHA-256 signature over everything before the signatures.
import { createHash } from "node:crypto";
import { closeSync, fstatSync, fsyncSync, openSync, readSync, renameSync, rmSync, writeSync } from "node:fs";
import { bzip2 } from "./bzip2.ts";
import { CHUNK_SIZE, DEFAULT_BLOCK_SIZE, encodeHeader, HEADER_SIZE, loadPrivateKey, SIGNATURE_VERSION, signDigest } from "./format.ts";
import {
  encodeManifest,
  encodeSignatures,
  HOLE,
  OpType,
  ProcedureType,
  type DeltaArchiveManifest,
  type InstallInfo,
  type InstallOperation,
} from "./proto.ts";

export interface BuildOptions {
  imagePath: string;
  privateKeyPem: string | Buffer;
  kernelPath?: string;
  outPath: string;
  onProgress?: (bytesDone: number, total: number) => void;
}

export interface BuildResult {
  size: number;
  /** Raw SHA-256 of the payload file (base64 of it goes into the Omaha response). */
  sha256: Uint8Array;
  partitionSize: number;
  partitionHash: Uint8Array;
  replace: number;
  replaceBz: number;
}

/**
 * bzip2 takes ~0.3 s per MiB of incompressible data only to lose; a 2 ms zstd level-1 pass (large
 * window, so long-range repeats count too) tells such chunks apart first. Chunks it can shrink
 * get the real test: REPLACE_BZ only when bzip2's output is smaller.
 */
function worthTrying(chunk: Uint8Array): boolean {
  return Bun.zstdCompressSync(chunk, { level: 1 }).length < chunk.length;
}

function writeAll(fd: number, data: Uint8Array): void {
  for (let done = 0; done < data.length; ) done += writeSync(fd, data, done, data.length - done);
}

interface Blobs {
  fd: number;
  offset: number;
  counts: { replace: number; replaceBz: number };
}

/** Cuts one file into operations appended to `blobs`; returns them and the file's info. */
function cut(path: string, blobs: Blobs, progress: (n: number) => void): { ops: InstallOperation[]; info: InstallInfo } {
  const fd = openSync(path, "r");
  try {
    const size = fstatSync(fd).size;
    const hash = createHash("sha256");
    const ops: InstallOperation[] = [];
    const buf = new Uint8Array(CHUNK_SIZE);
    for (let pos = 0; pos < size; ) {
      let n = 0;
      while (n < CHUNK_SIZE && pos + n < size) {
        const r = readSync(fd, buf, n, Math.min(CHUNK_SIZE, size - pos) - n, pos + n);
        if (r === 0) throw new Error(`${path} shrank while being read`);
        n += r;
      }
      const chunk = buf.subarray(0, n);
      hash.update(chunk);
      let blob: Uint8Array = chunk;
      let type = OpType.REPLACE;
      if (worthTrying(chunk)) {
        const bz = bzip2(chunk);
        if (bz.length < chunk.length) {
          blob = bz;
          type = OpType.REPLACE_BZ;
        }
      }
      if (type === OpType.REPLACE) blobs.counts.replace++;
      else blobs.counts.replaceBz++;
      ops.push({
        type,
        dataOffset: blobs.offset,
        dataLength: blob.length,
        srcExtents: [],
        dstExtents: [{ startBlock: pos / DEFAULT_BLOCK_SIZE, numBlocks: Math.ceil(n / DEFAULT_BLOCK_SIZE) }],
        dataSha256Hash: createHash("sha256").update(blob).digest(),
      });
      writeAll(blobs.fd, blob);
      blobs.offset += blob.length;
      pos += n;
      progress(n);
    }
    return { ops, info: { size, hash: hash.digest() } };
  } finally {
    closeSync(fd);
  }
}

export async function buildPayload(o: BuildOptions): Promise<BuildResult> {
  const key = loadPrivateKey(o.privateKeyPem);
  const sizeOf = (p: string) => {
    const fd = openSync(p, "r");
    try {
      return fstatSync(fd).size;
    } finally {
      closeSync(fd);
    }
  };
  const total = sizeOf(o.imagePath) + (o.kernelPath ? sizeOf(o.kernelPath) : 0);
  let done = 0;
  const progress = (n: number) => {
    done += n;
    o.onProgress?.(done, total);
  };

  const blobPath = `${o.outPath}.blobs.tmp`;
  const tmpPath = `${o.outPath}.tmp`;
  const blobs: Blobs = { fd: openSync(blobPath, "w+"), offset: 0, counts: { replace: 0, replaceBz: 0 } };
  try {
    const image = cut(o.imagePath, blobs, progress);
    const kernel = o.kernelPath ? cut(o.kernelPath, blobs, progress) : undefined;

    const sigBytes = (key.asymmetricKeyDetails!.modulusLength! + 7) >> 3;
    const signaturesSize = encodeSignatures({ signatures: [{ version: SIGNATURE_VERSION, data: new Uint8Array(sigBytes) }] }).length;
    const signaturesOffset = blobs.offset;
    const manifest: DeltaArchiveManifest = {
      partitionOperations: image.ops,
      // Old clients push the signatures blob through the writer like any operation's data.
      noopOperations: [
        {
          type: OpType.REPLACE,
          dataOffset: signaturesOffset,
          dataLength: signaturesSize,
          srcExtents: [],
          dstExtents: [{ startBlock: HOLE, numBlocks: Math.ceil(signaturesSize / DEFAULT_BLOCK_SIZE) }],
        },
      ],
      blockSize: DEFAULT_BLOCK_SIZE,
      signaturesOffset,
      signaturesSize,
      newPartitionInfo: image.info,
      procedures: kernel ? [{ type: ProcedureType.KERNEL, operations: kernel.ops, newInfo: kernel.info }] : [],
    };
    const manifestBytes = encodeManifest(manifest);

    const out = openSync(tmpPath, "w");
    try {
      const fileHash = createHash("sha256");
      const put = (b: Uint8Array) => {
        fileHash.update(b);
        writeAll(out, b);
      };
      put(encodeHeader(manifestBytes.length));
      put(manifestBytes);
      const buf = new Uint8Array(4 << 20);
      for (let pos = 0; pos < blobs.offset; ) {
        const n = readSync(blobs.fd, buf, 0, Math.min(buf.length, blobs.offset - pos), pos);
        if (n === 0) throw new Error("blob file ended early");
        put(buf.subarray(0, n));
        pos += n;
      }
      const signature = signDigest(fileHash.copy().digest(), key);
      put(encodeSignatures({ signatures: [{ version: SIGNATURE_VERSION, data: signature }] }));
      fsyncSync(out);
      const sha256 = fileHash.digest();
      renameSync(tmpPath, o.outPath);
      return {
        size: HEADER_SIZE + manifestBytes.length + signaturesOffset + signaturesSize,
        sha256,
        partitionSize: image.info.size!,
        partitionHash: image.info.hash!,
        ...blobs.counts,
      };
    } finally {
      closeSync(out);
    }
  } finally {
    closeSync(blobs.fd);
    rmSync(blobPath, { force: true });
    rmSync(tmpPath, { force: true });
  }
}

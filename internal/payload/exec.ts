// One operation's work: check its blob's SHA-256, bunzip2 if needed, write it over its extents
// with the last block zero-padded (spec §3.3). Runs on worker threads so decompression and hashing
// use the other cores while the main thread downloads; the same function runs inline when
// workers are not wanted.
import type { Bzip2Library } from "./bzip2.ts";
import type { StartWriteback } from "./writeback.ts";

export interface OpJob {
  index: number;
  /** 0 REPLACE, 1 REPLACE_BZ (delta types are refused before a job is made). */
  type: 0 | 1;
  blob: Uint8Array;
  sha256?: Uint8Array;
  /** Payload byte range of the blob, for messages. */
  start: number;
  /** Destination: fd -1 means check only (no file to write). */
  fd: number;
  destName: string;
  destOffset: number;
  /** Bytes available at the destination (-1: unlimited, a plain file that may grow). */
  destLength: number;
  blockSize: number;
  /** [startBlock, numBlocks]; startBlock -1 is a sparse hole (not written). */
  extents: [number, number][];
}

export type OpOutcome = { index: number; error?: undefined } | { index: number; error: { check: "operation-hash" | "operation" | "write"; message: string } };

export interface OpEnv {
  sha256(b: Uint8Array): Uint8Array;
  bz: Bzip2Library;
  writeSync(fd: number, b: Uint8Array, off: number, len: number, pos: number): number;
  writeback: StartWriteback;
  /** Reused output buffer for bunzip2 (grown as needed). */
  scratch: { buf: Uint8Array };
  /**
   * The last few bunzip2 outputs, by the hex SHA-256 of their (verified) blob, most recent last.
   * A full payload repeats blobs: every MiB of free space is the same REPLACE_BZ of zeros, and
   * decoding one is milliseconds of libbz2 where a copy is microseconds.
   */
  decoded: { key: string; out: Uint8Array }[];
  zeros: Uint8Array;
}

/**
 * Self-contained (uses only its parameters): the workers get its source text, so it must not
 * refer to anything else in this module.
 */
export function executeOp(job: OpJob, env: OpEnv): OpOutcome {
  const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  const where = `operation ${job.index} (payload bytes ${job.start}-${job.start + job.blob.length})`;
  if (job.sha256) {
    const got = env.sha256(job.blob);
    let same = got.length === job.sha256.length;
    for (let i = 0; same && i < got.length; i++) same = got[i] === job.sha256[i];
    if (!same) {
      return { index: job.index, error: { check: "operation-hash", message: `${where}: data SHA-256 ${hex(got)} does not match the manifest's ${hex(job.sha256)}` } };
    }
  }
  const bs = job.blockSize;
  let dstBytes = 0;
  for (const [, n] of job.extents) dstBytes += n * bs;
  let data = job.blob;
  if (job.type === 1) {
    // only a blob whose hash was checked above may stand for another with the same hash
    const key = job.sha256 ? `${job.blob.length}:${hex(job.sha256)}` : undefined;
    const at = key === undefined ? -1 : env.decoded.findIndex((d) => d.key === key);
    if (at >= 0) {
      const hit = env.decoded.splice(at, 1)[0]!;
      env.decoded.push(hit);
      data = hit.out;
    } else {
      if (env.scratch.buf.length < dstBytes) env.scratch.buf = new Uint8Array(dstBytes);
      try {
        data = env.bz.decompress(job.blob, dstBytes, env.scratch.buf);
      } catch (e) {
        return { index: job.index, error: { check: "operation", message: `${where}: ${(e as Error).message}` } };
      }
      if (key !== undefined) {
        if (env.decoded.length >= 4) env.decoded.shift();
        env.decoded.push({ key, out: data.slice() });
      }
    }
  } else if (data.length > dstBytes) {
    return { index: job.index, error: { check: "operation", message: `${where}: ${data.length} bytes of data for ${dstBytes} bytes of extents` } };
  }
  if (job.fd < 0) return { index: job.index };
  const put = (b: Uint8Array, pos: number) => {
    for (let done = 0; done < b.length; ) {
      const n = env.writeSync(job.fd, b, done, b.length - done, pos + done);
      if (n <= 0) throw new Error(`short write at byte ${pos + done}`);
      done += n;
    }
  };
  let off = 0;
  for (const [start, num] of job.extents) {
    const bytes = num * bs;
    if (start < 0) {
      off += bytes;
      continue;
    }
    const at = start * bs;
    if (job.destLength >= 0 && at + bytes > job.destLength) {
      return { index: job.index, error: { check: "operation", message: `${where}: extent blocks ${start}+${num} end past the ${job.destLength}-byte ${job.destName}` } };
    }
    const piece = data.subarray(Math.min(off, data.length), Math.min(off + bytes, data.length));
    try {
      put(piece, job.destOffset + at);
      for (let pad = piece.length; pad < bytes; ) {
        const n = Math.min(env.zeros.length, bytes - pad);
        put(env.zeros.subarray(0, n), job.destOffset + at + pad);
        pad += n;
      }
      env.writeback(job.fd, job.destOffset + at, bytes);
    } catch (e) {
      return { index: job.index, error: { check: "write", message: `writing the ${job.destName}: ${(e as Error).message}` } };
    }
    off += bytes;
  }
  return { index: job.index };
}

// Payload files hosted by the server: hashed while they are written (the upload is streamed, never
// held in memory) and served with single-range support so update_engine can resume a download.
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { ApiError } from "./errors.ts";

export interface FileHashes {
  size: number;
  /** base64 SHA-1 (package@hash). */
  sha1: string;
  /** base64 SHA-256 (action@sha256). */
  sha256: string;
  /** lowercase hex SHA-256 (package@hash_sha256 of extra files). */
  sha256Hex: string;
}

/** A file name a client can append to a codebase: no path, no control characters. */
export function validFilename(name: string): boolean {
  return /^[A-Za-z0-9._+-]{1,200}$/.test(name) && name !== "." && name !== "..";
}

export function payloadDir(dataDir: string, packageId: string): string {
  return join(dataDir, "payloads", packageId);
}

/** Streams `body` into dir/name (via a temporary file renamed at the end) and hashes it. */
export async function savePayload(dir: string, name: string, body: ReadableStream<Uint8Array>, maxBytes: number): Promise<FileHashes> {
  if (!validFilename(name)) throw new ApiError(400, `invalid file name "${name}"`);
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `.${name}.${process.pid}.${Date.now()}.part`);
  const sink = Bun.file(tmp).writer({ highWaterMark: 1 << 20 });
  const sha1 = new Bun.CryptoHasher("sha1");
  const sha256 = new Bun.CryptoHasher("sha256");
  let size = 0;
  try {
    for await (const chunk of body) {
      size += chunk.byteLength;
      if (size > maxBytes) throw new ApiError(413, `payload larger than ${maxBytes} bytes`);
      sha1.update(chunk);
      sha256.update(chunk);
      sink.write(chunk);
      await sink.flush();
    }
    await sink.end();
    if (size === 0) throw new ApiError(400, "empty payload");
    const fd = openSync(tmp, "r");
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, join(dir, name));
  } catch (e) {
    try {
      await sink.end();
    } catch {
      // already closed
    }
    rmSync(tmp, { force: true });
    throw e;
  }
  const digest = sha256.digest();
  return { size, sha1: sha1.digest("base64"), sha256: digest.toString("base64"), sha256Hex: digest.toString("hex") };
}

type Range = { start: number; end: number } | "unsatisfiable" | null;

/** One `bytes=` range (RFC 9110); several ranges or a malformed header mean the whole file. */
export function parseRange(header: string | null, size: number): Range {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return null;
  if (m[1] === "") {
    const n = Number(m[2]);
    if (n === 0) return "unsatisfiable";
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) return "unsatisfiable";
  return { start, end };
}

export function servePayload(path: string, req: Request): Response {
  let size: number;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new Error("not a file");
    size = st.size;
  } catch {
    return new Response("payload not found\n", { status: 404 });
  }
  const file = Bun.file(path);
  const headers = new Headers({ "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream" });
  const range = parseRange(req.headers.get("range"), size);
  if (range === "unsatisfiable") {
    headers.set("Content-Range", `bytes */${size}`);
    return new Response(null, { status: 416, headers });
  }
  const head = req.method === "HEAD";
  if (range === null) {
    headers.set("Content-Length", String(size));
    return new Response(head ? null : file, { status: 200, headers });
  }
  headers.set("Content-Range", `bytes ${range.start}-${range.end}/${size}`);
  headers.set("Content-Length", String(range.end - range.start + 1));
  return new Response(head ? null : file.slice(range.start, range.end + 1), { status: 206, headers });
}

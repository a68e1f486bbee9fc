// Download and apply in one stream, resumable: within one call a broken connection is resumed
// at the exact byte (the running hashes are still in memory); across processes the resume state
// in stateDir brings a new call back to the last applied operation, and the rest is fetched with
// an HTTP Range request.
import { Applier, type ApplyResult, type PartitionTarget } from "./apply.ts";
import { PayloadError } from "./errors.ts";
import { loadPublicKey } from "./format.ts";
import { ResumeState } from "./resume.ts";

export interface DownloadOptions {
  url: string;
  /** Omaha `package@size`; checked against the manifest and the bytes received. */
  size?: number;
  /** Omaha `action@sha256`: base64 SHA-256 of the whole payload. */
  sha256Base64?: string;
  /** Without a key the signature is not checked (update_engine does so when its key file is missing). */
  publicKeyPem?: string;
  target: PartitionTarget;
  kernelPath?: string;
  /** Holds the resume state; the same directory must be given to resume. */
  stateDir: string;
  onProgress?: (bytesDone: number, total: number) => void;
  signal?: AbortSignal;
  /** Extra request headers (e.g. Authorization, so credentials need not be in the URL). */
  headers?: Record<string, string>;
  /** Attempts in a row without progress before giving up with a transfer error (default 4). */
  retries?: number;
  /** Wait before the n-th retry is n times this (default 500 ms). */
  retryDelayMs?: number;
}

export interface DownloadResult extends ApplyResult {
  /** Payload offset this call started from (0 unless an earlier run's state was used; see also PayloadError.resumedFrom). */
  resumedFrom: number;
  /** HTTP requests made (more than one when a connection broke and was resumed). */
  requests: number;
}

/** Failures where what was downloaded so far is still good and worth keeping for a resume. */
function resumable(e: unknown): boolean {
  return e instanceof PayloadError && (e.check === "transfer" || e.check === "http" || e.check === "aborted");
}

function decodeSha256(b64: string): Uint8Array {
  const raw = Buffer.from(b64, "base64");
  if (raw.length !== 32 || raw.toString("base64") !== b64) {
    throw new PayloadError("payload-hash", `"${b64}" is not a base64 SHA-256`);
  }
  return raw;
}

class Interrupted extends Error {}

/** Waits `ms`, or less when the signal aborts (the loop then reports the abort). */
function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

export async function downloadAndApply(o: DownloadOptions): Promise<DownloadResult> {
  const expectedSha256 = o.sha256Base64 !== undefined ? decodeSha256(o.sha256Base64) : undefined;
  const publicKey = o.publicKeyPem !== undefined ? loadPublicKey(o.publicKeyPem) : undefined;
  // The same payload (by hash when known, so another mirror's URL still resumes) onto the same place.
  const payloadId = o.sha256Base64 !== undefined ? [o.sha256Base64, o.size ?? null] : [o.url, o.size ?? null];
  const identity = JSON.stringify([...payloadId, o.target.path, o.target.offset ?? 0, o.kernelPath ?? null]);
  const state = new ResumeState(o.stateDir, identity);
  const applier = new Applier({ target: o.target, kernelPath: o.kernelPath, publicKey, expectedSize: o.size, expectedSha256 });
  applier.onOpReceived = (p, blob) => state.received(applier, p, blob);
  applier.onOpsDone = () => state.progressed(applier);
  const retries = o.retries ?? 4;
  const delay = o.retryDelayMs ?? 500;
  let requests = 0;
  let resumedFrom = 0;
  try {
    resumedFrom = state.replay(applier);
    let failures = 0;
    while (!applier.done) {
      if (o.signal?.aborted) throw new PayloadError("aborted", "download aborted");
      const before = applier.position;
      requests++;
      try {
        await fetchFrom(o, applier);
      } catch (e) {
        if (!(e instanceof Interrupted)) throw e;
        failures = applier.position > before ? 1 : failures + 1;
        if (failures > retries) throw new PayloadError("transfer", `download failed at byte ${applier.position}: ${e.message}`);
        state.save(applier);
        await pause(delay * failures, o.signal);
      }
    }
    const result = await applier.finish();
    state.clear();
    return { ...result, resumedFrom, requests };
  } catch (e) {
    if (resumable(e)) {
      await applier.settle(); // operations still in flight count too
      state.save(applier);
    } else state.clear(); // the payload itself is bad: a resume would only reproduce the failure
    const err = e instanceof PayloadError ? e : new PayloadError("transfer", (e as Error).message);
    err.resumedFrom = resumedFrom > 0 ? resumedFrom : null;
    throw err;
  } finally {
    await applier.close();
    state.close();
  }
}

/** One request from the applier's position; returns at the end of the body, Interrupted when the connection failed. */
async function fetchFrom(o: DownloadOptions, applier: Applier): Promise<void> {
  const from = applier.position;
  let res: Response;
  try {
    // identity: the bytes hashed must be the file's, even where a server would gzip a ".gz" on the fly
    // the caller's headers cannot override these two, whatever their case
    const headers = new Headers(o.headers);
    headers.set("Accept-Encoding", "identity");
    if (from > 0) headers.set("Range", `bytes=${from}-`);
    else headers.delete("Range");
    res = await fetch(o.url, { headers, signal: o.signal, decompress: false } as RequestInit);
  } catch (e) {
    if (o.signal?.aborted) throw new PayloadError("aborted", "download aborted");
    throw new Interrupted((e as Error).message);
  }
  let skip = 0;
  if (res.status === 206) {
    const m = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(res.headers.get("content-range") ?? "");
    if (!m || Number(m[1]) !== from) {
      await res.body?.cancel();
      throw new PayloadError("transfer", `server answered range ${res.headers.get("content-range")} to a request from byte ${from}`);
    }
  } else if (res.status === 200) {
    skip = from; // the server ignored Range: drop what we already have
  } else if (res.status === 416) {
    await res.body?.cancel();
    throw new PayloadError("size", `server has no data from byte ${from} on (payload shorter than expected)`);
  } else {
    await res.body?.cancel();
    throw new PayloadError("http", `server answered ${res.status} ${res.statusText} for ${o.url}`, res.status);
  }
  const announced = Number(res.headers.get("content-length") ?? NaN);
  if (res.status === 200 && o.size !== undefined && Number.isFinite(announced) && announced !== o.size) {
    await res.body?.cancel();
    throw new PayloadError("size", `server sends ${announced} bytes but ${o.size} were expected`);
  }
  if (!res.body) throw new Interrupted("response without a body");
  const reader = res.body.getReader();
  let received = 0;
  const total = () => o.size ?? applier.total ?? 0;
  try {
    for (;;) {
      let r: Awaited<ReturnType<typeof reader.read>>;
      try {
        r = await reader.read();
      } catch (e) {
        if (o.signal?.aborted) throw new PayloadError("aborted", "download aborted");
        throw new Interrupted((e as Error).message);
      }
      if (r.done) break;
      let chunk = r.value;
      received += chunk.length;
      if (skip > 0) {
        const n = Math.min(skip, chunk.length);
        skip -= n;
        chunk = chunk.subarray(n);
      }
      applier.push(chunk);
      await applier.drain();
      o.onProgress?.(applier.position, total());
      if (o.signal?.aborted) throw new PayloadError("aborted", "download aborted");
    }
  } finally {
    reader.releaseLock();
  }
  // A body shorter than its Content-Length is a broken connection; a complete body that leaves the
  // payload unfinished means the server's file is short, which finish() reports as a size error.
  if (Number.isFinite(announced) && received < announced) throw new Interrupted(`connection closed after ${received} of ${announced} bytes`);
  if (!applier.done) await applier.finish();
}

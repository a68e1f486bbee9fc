// coreos-cloudinit's HTTP client (pkg/http_client.go): 10 s per request; GetRetry tries up to 15
// times with exponential backoff on network errors and 5xx; a 404 is "not found" at once (a
// metadata service without user-data), any other 4xx a failure at once.
import { logger } from "../log/log.ts";

const log = logger("cloudinit");

export class NotFound extends Error {}
export class HttpError extends Error {}

export interface HttpOptions {
  headers?: Record<string, string>;
  timeoutMs?: number;
  attempts?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
}

export const HTTP_DEFAULTS = { timeoutMs: 10_000, attempts: 15, initialBackoffMs: 50, maxBackoffMs: 5_000 };

type Outcome = { ok: true; body: Uint8Array } | { ok: false; retry: boolean; error: Error };

async function once(url: string, o: HttpOptions, method = "GET"): Promise<Outcome> {
  let res: Response;
  try {
    res = await fetch(url, { method, headers: o.headers, signal: AbortSignal.timeout(o.timeoutMs ?? HTTP_DEFAULTS.timeoutMs), redirect: "follow" });
  } catch (e) {
    return { ok: false, retry: true, error: new HttpError(`Unable to fetch data: ${(e as Error).message}`) };
  }
  const body = new Uint8Array(await res.arrayBuffer());
  if (res.status >= 200 && res.status < 300) return { ok: true, body };
  if (res.status === 404) return { ok: false, retry: false, error: new NotFound(`Not found. HTTP status code: ${res.status}`) };
  if (res.status >= 400 && res.status < 500) return { ok: false, retry: false, error: new HttpError(`Non-retriable error. HTTP status code: ${res.status}`) };
  return { ok: false, retry: true, error: new HttpError(`Server error. HTTP status code: ${res.status}`) };
}

/** One attempt (availability checks). */
export async function get(url: string, o: HttpOptions = {}): Promise<Uint8Array> {
  const r = await once(url, o);
  if (!r.ok) throw r.error;
  return r.body;
}

export async function put(url: string, o: HttpOptions = {}): Promise<Uint8Array> {
  const r = await once(url, o, "PUT");
  if (!r.ok) throw r.error;
  return r.body;
}

export async function getRetry(url: string, o: HttpOptions = {}): Promise<Uint8Array> {
  const attempts = o.attempts ?? HTTP_DEFAULTS.attempts;
  let backoff = o.initialBackoffMs ?? HTTP_DEFAULTS.initialBackoffMs;
  let last: Error = new HttpError(`Unable to fetch data from ${url}`);
  for (let attempt = 1; attempt <= attempts; attempt++) {
    log.info(`Fetching data from ${url}. Attempt #${attempt}`);
    const r = await once(url, o);
    if (r.ok) return r.body;
    if (!r.retry) throw r.error;
    last = r.error;
    log.warn(r.error.message);
    if (attempt < attempts) {
      await Bun.sleep(backoff);
      backoff = Math.min(backoff * 2, o.maxBackoffMs ?? HTTP_DEFAULTS.maxBackoffMs);
    }
  }
  throw new HttpError(`Unable to fetch data from ${url} after ${attempts} attempts: ${last.message}`);
}

/** FetchData: a 404 is empty data. */
export async function fetchData(url: string, o: HttpOptions = {}): Promise<Uint8Array> {
  try {
    return await getRetry(url, o);
  } catch (e) {
    if (e instanceof NotFound) return new Uint8Array();
    throw e;
  }
}

// From an HTTP request on /v2/keys to what the member must do, following etcd's parseKeyRequest
// (check order and error texts included) and applyV2's method table (spec §1.3-1.4).
import { EtcdError, ErrorCode } from "./errors.ts";
import { type Form, FormError, formValue, parseForm } from "./form.ts";
import { parseBool, parseUint } from "../flags/flags.ts";
import { normalizeKey } from "./store.ts";
import type { Command } from "./types.ts";

export type KeysRequest =
  | { kind: "get"; key: string; recursive: boolean; sorted: boolean; quorum: boolean; head: boolean }
  | { kind: "watch"; key: string; recursive: boolean; stream: boolean; waitIndex: number }
  | { kind: "write"; cmd: Exclude<Command, { op: "sync" | "get" }>; noValueOnSuccess: boolean };

/** Expiration times past what a Date can hold are refused rather than wrapped around as Go does. */
const MAX_TIME_MS = 8.64e15;

function invalid(code: ErrorCode, cause: string): EtcdError {
  return new EtcdError(code, cause, 0);
}

function getBool(form: Form, key: string): boolean {
  const v = formValue(form, key);
  if (v === undefined) return false;
  const b = parseBool(v);
  if (b === undefined) throw invalid(ErrorCode.InvalidField, `invalid value for "${key}"`);
  return b;
}

function getNullableBool(form: Form, key: string): boolean | null {
  if (!form.has(key)) return null;
  const b = parseBool(formValue(form, key)!);
  if (b === undefined) throw invalid(ErrorCode.InvalidField, `invalid value for ${key}`);
  return b;
}

function getUint(form: Form, key: string, code: ErrorCode): number {
  const v = formValue(form, key);
  if (v === undefined) return 0;
  const n = parseUint(v);
  if (n === undefined) throw invalid(code, `invalid value for "${key}"`);
  return n;
}

/**
 * @param method HTTP method (GET HEAD PUT POST DELETE; others never reach here)
 * @param rawKey the path after /v2/keys, still percent-encoded as received
 * @param query the raw query string without "?"
 * @param body the urlencoded body for PUT/POST, else null
 * @param now the member's clock, which fixes TTLs into absolute times before the proposal
 */
export function parseKeysRequest(
  method: string,
  rawKey: string,
  query: string,
  body: string | null,
  now: number,
): KeysRequest {
  let form: Form;
  try {
    form = parseForm(query, body);
  } catch (e) {
    if (e instanceof FormError) throw invalid(ErrorCode.InvalidForm, e.message);
    throw e;
  }
  const key = normalizeKey(rawKey);

  const prevIndex = getUint(form, "prevIndex", ErrorCode.IndexNaN);
  const waitIndex = getUint(form, "waitIndex", ErrorCode.IndexNaN);
  const recursive = getBool(form, "recursive");
  const sorted = getBool(form, "sorted");
  const wait = getBool(form, "wait");
  const dir = getBool(form, "dir");
  const quorum = getBool(form, "quorum");
  const stream = getBool(form, "stream");
  if (wait && method !== "GET") throw invalid(ErrorCode.InvalidField, `"wait" can only be used with GET requests`);

  const prevValueRaw = formValue(form, "prevValue");
  if (prevValueRaw === "") throw invalid(ErrorCode.PrevValueRequired, `"prevValue" cannot be empty`);
  const prevValue = prevValueRaw ?? null;
  const noValueOnSuccess = getBool(form, "noValueOnSuccess");

  let ttl: number | null = null;
  const ttlRaw = formValue(form, "ttl");
  if (ttlRaw !== undefined && ttlRaw !== "") {
    const n = parseUint(ttlRaw);
    if (n === undefined || now + n * 1000 > MAX_TIME_MS) throw invalid(ErrorCode.TTLNaN, `invalid value for "ttl"`);
    ttl = n;
  }
  const prevExist = getNullableBool(form, "prevExist");
  const refresh = getNullableBool(form, "refresh") === true;
  const valueRaw = formValue(form, "value");
  if (refresh) {
    if (valueRaw !== undefined && valueRaw !== "") throw invalid(ErrorCode.RefreshValue, "A value was provided on a refresh");
    if (ttl === null) throw invalid(ErrorCode.RefreshTTLRequired, "No TTL value set");
  }
  const value = valueRaw ?? "";
  const expireAt = ttl === null ? null : now + ttl * 1000;

  switch (method) {
    case "GET":
    case "HEAD":
      if (wait) return { kind: "watch", key, recursive, stream, waitIndex };
      return { kind: "get", key, recursive, sorted, quorum, head: method === "HEAD" };
    case "POST":
      return { kind: "write", noValueOnSuccess, cmd: { op: "create", key, value, dir, unique: true, expireAt } };
    case "PUT": {
      const compare = prevIndex > 0 || prevValue !== null;
      let cmd: KeysRequest & { kind: "write" } extends { cmd: infer C } ? C : never;
      if (prevExist === true && !compare) cmd = { op: "update", key, value: refresh ? null : value, expireAt, refresh };
      else if (prevExist === false) cmd = { op: "create", key, value, dir, unique: false, expireAt };
      else if (compare) cmd = { op: "compareAndSwap", key, value, prevValue, prevIndex, expireAt, refresh };
      else cmd = { op: "set", key, value, dir, expireAt, refresh };
      return { kind: "write", noValueOnSuccess, cmd };
    }
    case "DELETE":
      if (prevIndex > 0 || prevValue !== null)
        return { kind: "write", noValueOnSuccess, cmd: { op: "compareAndDelete", key, prevValue, prevIndex } };
      return { kind: "write", noValueOnSuccess, cmd: { op: "delete", key, dir, recursive } };
    default:
      throw new Error(`unexpected method ${method}`);
  }
}

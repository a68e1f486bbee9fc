// Watches. A Watcher is the Go client's: one event per next(), then it re-arms at
// modifiedIndex+1. watchLoop adds the recipe clients need to survive etcd's 1000-event history:
// after error 401 ("event index cleared") it re-reads the key and watches from X-Etcd-Index+1.
import { EtcdError, ErrorCode } from "../kv/errors.ts";
import { ClusterError, InvalidResponseError } from "./errors.ts";
import { EmptyBodyError, doKeys, getAction, waitAction, type KeyResponse } from "./keys.ts";
import { canceled, type Transport } from "./transport.ts";

export interface WatcherOptions {
  /** Report events after this index (the first event has index >= afterIndex+1); 0 = from now. */
  afterIndex?: number;
  recursive?: boolean;
}

export class Watcher {
  /** The waitIndex of the next long poll (0 = whatever happens next). */
  waitIndex: number;
  readonly recursive: boolean;

  constructor(
    private readonly t: Transport,
    readonly key: string,
    o: WatcherOptions = {},
  ) {
    this.waitIndex = o.afterIndex && o.afterIndex > 0 ? o.afterIndex + 1 : 0;
    this.recursive = !!o.recursive;
  }

  /** Waits for the next event. A long poll the server closes without an event is re-sent. */
  async next(signal?: AbortSignal): Promise<KeyResponse> {
    for (let empty = 0; ; empty++) {
      if (empty > 1) await sleep(Math.min(1000, 50 * empty), signal);
      try {
        const r = await doKeys(this.t, waitAction(this.key, { waitIndex: this.waitIndex, recursive: this.recursive }), { signal });
        this.waitIndex = (r.node.modifiedIndex ?? 0) + 1;
        return r;
      } catch (e) {
        if (!(e instanceof EmptyBodyError)) throw e;
      }
    }
  }
}

export type WatchItem =
  /** A change, in index order. */
  | { kind: "event"; response: KeyResponse }
  /**
   * Events were lost (error 401). `snapshot` is the key's state now (null when it does not
   * exist); watching continues from `index`+1.
   */
  | { kind: "resync"; snapshot: KeyResponse | null; index: number };

export interface WatchLoopOptions extends WatcherOptions {
  signal?: AbortSignal;
  /**
   * Milliseconds to wait before retrying when no endpoint answers (or answers junk);
   * absent = such errors end the loop by throwing.
   */
  retryDelay?: number;
}

/** Every change under `key` until the signal fires (then it just returns). */
export async function* watchLoop(t: Transport, key: string, o: WatchLoopOptions = {}): AsyncGenerator<WatchItem> {
  const w = new Watcher(t, key, o);
  while (!o.signal?.aborted) {
    let r: KeyResponse;
    try {
      r = await w.next(o.signal);
    } catch (e) {
      if (o.signal?.aborted) return;
      if (e instanceof EtcdError && e.errorCode === ErrorCode.EventIndexCleared) {
        const { snapshot, index } = await resync(t, key, w.recursive, o.signal);
        w.waitIndex = index + 1;
        yield { kind: "resync", snapshot, index };
        continue;
      }
      if (o.retryDelay !== undefined && (e instanceof ClusterError || e instanceof InvalidResponseError)) {
        await sleep(o.retryDelay, o.signal).catch(() => undefined);
        continue;
      }
      throw e;
    }
    yield { kind: "event", response: r };
  }
}

async function resync(
  t: Transport,
  key: string,
  recursive: boolean,
  signal: AbortSignal | undefined,
): Promise<{ snapshot: KeyResponse | null; index: number }> {
  try {
    const snapshot = await doKeys(t, getAction(key, { recursive }), { signal });
    return { snapshot, index: snapshot.etcdIndex };
  } catch (e) {
    // A key that does not exist still tells us where the history stands.
    if (e instanceof EtcdError && e.errorCode === ErrorCode.KeyNotFound) return { snapshot: null, index: e.index };
    throw e;
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(canceled(signal));
    const onAbort = () => {
      clearTimeout(timer);
      reject(canceled(signal!));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

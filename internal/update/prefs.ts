// update_engine's prefs directory (§2.1): one file per key, the value as the file's contents.
// Writes go to a temporary file renamed over the key, so a crash leaves the old or the new value.
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";

export const Pref = {
  PreviousVersion: "previous-version",
  AlephVersion: "aleph-version",
  FullResponse: "full-response",
  UpdateCheckResponseHash: "update-check-response-hash",
  PayloadAttemptNumber: "payload-attempt-number",
  CurrentUrlIndex: "current-url-index",
  CurrentUrlFailureCount: "current-url-failure-count",
  BackoffExpiryTime: "backoff-expiry-time",
  CurrentResponseSignature: "current-response-signature",
} as const;
export type Pref = (typeof Pref)[keyof typeof Pref];

export class Prefs {
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }

  /** null when the key was never set (a missing file), which update_engine tells apart from "". */
  get(key: Pref): string | null {
    try {
      return readFileSync(join(this.dir, key), "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw e;
    }
  }

  /** An integer pref; `fallback` for a missing or unreadable value. */
  getInt(key: Pref, fallback = 0): number {
    const s = this.get(key)?.trim();
    if (s === undefined || s === "" || !/^-?\d+$/.test(s)) return fallback;
    return Number(s);
  }

  set(key: Pref, value: string | number): void {
    const path = join(this.dir, key);
    const tmp = `${path}.tmp`;
    const fd = openSync(tmp, "w", 0o644);
    try {
      writeSync(fd, String(value));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  }

  delete(key: Pref): void {
    rmSync(join(this.dir, key), { force: true });
  }
}

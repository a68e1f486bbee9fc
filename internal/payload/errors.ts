// Every way a payload can be refused, each tied to the update_engine ActionExitCode the daemon
// reports for it in its Omaha event (spec §1.3).

export const CHECK_CODES = {
  /** The connection failed or broke and retries were used up. */
  transfer: 9,
  /** The server answered with a status that is not 200/206 (code 2000 + status). */
  http: 2000,
  /** Not the size the Omaha response (or the manifest) announced. */
  size: 11,
  /** SHA-256 of the whole file differs from the Omaha response's. */
  "payload-hash": 10,
  /** No version-2 signature, or the manifest has no signature fields. */
  "signature-missing": 12,
  /** The signature does not verify with the public key. */
  signature: 18,
  magic: 21,
  "metadata-size": 32,
  manifest: 23,
  /** An operation's blob does not match its data_sha256_hash. */
  "operation-hash": 29,
  /** An operation cannot be executed (bad bzip2 data, extent outside the partition, delta op). */
  operation: 28,
  /** The partition is too small for the manifest's new_partition_info. */
  "partition-info": 13,
  "target-open": 7,
  write: 14,
  /** The written partition's SHA-256 differs from new_partition_info.hash. */
  "partition-hash": 15,
  "kernel-hash": 16,
  /** The resume state cannot be read or written. */
  state: 20,
  aborted: 1,
} as const;

export type PayloadCheck = keyof typeof CHECK_CODES;

export class PayloadError extends Error {
  /** update_engine's ActionExitCode for this failure (2000 + status for HTTP errors). */
  readonly code: number;
  /**
   * Set by downloadAndApply: the payload offset the failed call had resumed from (an earlier run's
   * state), or null when it started from the beginning (or failed before its state was read).
   */
  resumedFrom: number | null = null;
  constructor(
    readonly check: PayloadCheck,
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = "PayloadError";
    this.code = check === "http" && status !== undefined ? 2000 + status : CHECK_CODES[check];
  }
}

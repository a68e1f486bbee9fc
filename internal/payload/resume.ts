// Resume state of one download in a caller-given directory. node's Hash cannot be saved, so the
// running hashes are rebuilt on resume instead: from the saved header+manifest, every REPLACE
// blob read back from the target where it was written, and a kept copy of the blobs that cannot
// be read back (REPLACE_BZ, and kernel data when no kernel file is written). Each rebuilt blob must
// match its operation's SHA-256 before it counts, so a target changed behind our back (or a crash
// that lost unflushed writes) only moves the resume point earlier; it cannot poison the hash.
// Disk cost: the compressed blobs only, not a copy of the payload.
import { closeSync, existsSync, ftruncateSync, mkdirSync, openSync, readFileSync, readSync, renameSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import * as v from "valibot";
import type { Applier, PlannedOp } from "./apply.ts";
import { PayloadError } from "./errors.ts";
import { HEADER_SIZE, parseHeader } from "./format.ts";
import { decodeManifest } from "./proto.ts";

const StateSchema = v.object({
  version: v.literal(1),
  identity: v.string(),
  opsDone: v.pipe(v.number(), v.integer(), v.minValue(0)),
});
type State = v.InferOutput<typeof StateSchema>;

const STATE = "state.json";
const METADATA = "metadata.bin";
const KEPT = "kept.bin";
/**
 * Checkpoints at most this often while applying: a rename costs milliseconds on a busy disk,
 * too much per 1 MiB operation; a kill loses at most this much progress plus what was in flight.
 */
const CHECKPOINT_MS = 250;

/** Whether `b` is exactly a header and a manifest that parses (a write cut short fails this). */
function wholeMetadata(b: Uint8Array): boolean {
  try {
    if (b.length < HEADER_SIZE || HEADER_SIZE + parseHeader(b.subarray(0, HEADER_SIZE)) !== b.length) return false;
    decodeManifest(b.subarray(HEADER_SIZE));
    return true;
  } catch {
    return false;
  }
}

export class ResumeState {
  private keptFd?: number;
  private keptBytes = 0;
  private hasMetadata = false;
  private lastSave = 0;

  constructor(
    private readonly dir: string,
    /** What the saved state must belong to: same payload onto the same target. */
    private readonly identity: string,
  ) {
    try {
      mkdirSync(dir, { recursive: true });
    } catch (e) {
      throw new PayloadError("state", `cannot create the state directory ${dir}: ${(e as Error).message}`);
    }
  }

  private read(): State | undefined {
    try {
      const parsed = v.safeParse(StateSchema, JSON.parse(readFileSync(join(this.dir, STATE), "utf8")));
      return parsed.success && parsed.output.identity === this.identity ? parsed.output : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * Brings a fresh applier up to where the last run got, as far as it can be proven; returns the
   * payload offset to download from (0 when there is nothing usable).
   */
  replay(applier: Applier): number {
    const st = this.read();
    const metaPath = join(this.dir, METADATA);
    if (!st || !existsSync(metaPath)) {
      this.clear();
      this.openKept(0);
      return 0;
    }
    const meta = readFileSync(metaPath);
    if (!wholeMetadata(meta)) {
      this.clear(); // torn or damaged: start over
      this.openKept(0);
      return 0;
    }
    applier.push(meta);
    this.hasMetadata = true;
    const keptPath = join(this.dir, KEPT);
    const keptFd = existsSync(keptPath) ? openSync(keptPath, "r") : undefined;
    let keptOffset = 0;
    try {
      while (applier.opsDone < st.opsDone && !applier.done) {
        const p = applier.ops[applier.opsDone]!;
        let blob: Uint8Array;
        if (p.readBack) blob = applier.readBackBlob(p);
        else {
          if (keptFd === undefined) break;
          blob = new Uint8Array(p.length);
          if (p.length > 0 && readSync(keptFd, blob, 0, p.length, keptOffset) !== p.length) break;
        }
        if (!applier.replayApplied(blob)) break;
        if (!p.readBack) keptOffset += p.length;
      }
    } finally {
      if (keptFd !== undefined) closeSync(keptFd);
    }
    this.openKept(keptOffset);
    return applier.position;
  }

  private openKept(length: number): void {
    try {
      this.keptFd = openSync(join(this.dir, KEPT), "a+");
      ftruncateSync(this.keptFd, length);
      this.keptBytes = length;
    } catch (e) {
      throw new PayloadError("state", `cannot open the resume state in ${this.dir}: ${(e as Error).message}`);
    }
  }

  /** Called with each blob as it is handed out: keeps the metadata once, and blobs that cannot be read back. */
  received(applier: Applier, p: PlannedOp, blob: Uint8Array): void {
    try {
      if (!this.hasMetadata && applier.metadata) {
        writeFileSync(join(this.dir, METADATA), applier.metadata);
        this.hasMetadata = true;
      }
      if (!p.readBack && this.keptFd !== undefined) {
        for (let done = 0; done < blob.length; ) done += writeSync(this.keptFd, blob, done, blob.length - done, this.keptBytes + done);
        this.keptBytes += blob.length;
      }
    } catch (e) {
      throw new PayloadError("state", `cannot write the resume state in ${this.dir}: ${(e as Error).message}`);
    }
  }

  /** Called whenever more operations are applied. */
  progressed(applier: Applier): void {
    if (Date.now() - this.lastSave >= CHECKPOINT_MS) this.save(applier);
  }

  /** Writes the checkpoint (atomically: temp file and rename). */
  save(applier: Applier): void {
    if (!this.hasMetadata) return;
    this.lastSave = Date.now();
    const st: State = { version: 1, identity: this.identity, opsDone: applier.opsDone };
    const tmp = join(this.dir, `${STATE}.tmp`);
    try {
      writeFileSync(tmp, JSON.stringify(st));
      renameSync(tmp, join(this.dir, STATE));
    } catch (e) {
      throw new PayloadError("state", `cannot write the resume state in ${this.dir}: ${(e as Error).message}`);
    }
  }

  close(): void {
    if (this.keptFd !== undefined) closeSync(this.keptFd);
    this.keptFd = undefined;
  }

  /** Forgets the download (after success, or when what was downloaded proved bad). */
  clear(): void {
    this.close();
    for (const f of [STATE, `${STATE}.tmp`, METADATA, KEPT]) rmSync(join(this.dir, f), { force: true });
    this.hasMetadata = false;
    this.keptBytes = 0;
  }
}

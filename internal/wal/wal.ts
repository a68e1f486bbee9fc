// The write-ahead log: etcd's design (segments, rolling crc, torn-tail repair, MustSync), our bytes.
import { mkdir, open, rename, rm, rmdir, type FileHandle } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Entry, HardState } from "../kv/types.ts";
import { logger } from "../log/log.ts";
import { corrupt } from "./errors.ts";
import { scanSegmentFile } from "./reader.ts";
import {
  MAX_BODY,
  RecordType,
  crcRecord,
  decodeEntry,
  decodeHardState,
  decodeSnapshot,
  entryRecord,
  frameAll,
  hardStateRecord,
  metadataRecord,
  recordLen,
  snapshotRecord,
  type PendingRecord,
  type WalSnapshot,
} from "./record.ts";
import {
  DEFAULT_SEGMENT_SIZE,
  appendAt,
  createTmpSegment,
  fsyncDir,
  listSegments,
  preallocate,
  removeTmpSegments,
  segmentName,
  writeFully,
  writeZeros,
  type SegmentName,
  type TmpSegment,
} from "./segment.ts";

export { WalCorruptError } from "./errors.ts";
export type { WalSnapshot } from "./record.ts";
export type Snapshot = WalSnapshot;

/** Exported so tests can watch the warnings. */
export const log = logger("wal");

/** etcd warns about fsyncs over 1 s: a disk that slow makes Raft miss heartbeats. */
const SLOW_SYNC_MS = 1000;

export interface WalOptions {
  /** Cut a new segment once the current one reaches this size (default 64 MiB). */
  segmentSize?: number;
  /** Called after each fdatasync of a segment (metrics, tests). */
  onSync?: (ms: number) => void;
  /** Appends up to this size use a blocking write(2) into the page cache (default 256 KiB; 0 = never). */
  inlineWriteMax?: number;
  /** open() reads segments through a window of this many bytes (default 1 MiB; tests make it tiny). */
  readChunk?: number;
}

export interface WalOpenResult {
  wal: Wal;
  metadata: Uint8Array;
  hardState: HardState | null;
  entries: Entry[];
}

interface Batch {
  records: PendingRecord[];
  mustSync: boolean;
  /** State to adopt once the records are written. */
  lastIndex?: number;
  snapIndex?: number;
  hardState?: HardState;
  resolve: () => void;
  reject: (err: Error) => void;
}

const sameHardState = (a: HardState | null, b: HardState) =>
  a !== null && a.term === b.term && a.vote === b.vote && a.commit === b.commit;

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export class Wal {
  /** fdatasync calls on segment files and positional writes, since open. */
  readonly stats = { syncs: 0, writes: 0 };

  private queue: Batch[] = [];
  private running: Promise<void> | null = null;
  private failed: Error | null = null;
  private closed = false;
  /** Written but not yet synced (a commit-only save). */
  private dirty = false;
  /** Hard state of the last save() call, for MustSync. */
  private queuedHardState: HardState | null;
  private pipeline: Promise<TmpSegment> | null = null;

  private constructor(
    readonly dir: string,
    private readonly metadata: Uint8Array,
    private readonly segmentSize: number,
    private readonly opts: WalOptions,
    private segments: SegmentName[],
    private fh: FileHandle,
    private offset: number,
    private crc: number,
    /** Index of the last entry written: names the next segment. */
    private lastIndex: number,
    /** Last hard state written: repeated at the head of each new segment. */
    private hardState: HardState | null,
  ) {
    this.queuedHardState = hardState;
    this.startPipeline();
  }

  static exists(dir: string): boolean {
    return listSegments(dir).length > 0;
  }

  static async create(dir: string, metadata: Uint8Array, opts: WalOptions = {}): Promise<Wal> {
    if (Wal.exists(dir)) throw new Error(`wal: ${dir} already holds a WAL`);
    const segmentSize = opts.segmentSize ?? DEFAULT_SEGMENT_SIZE;
    // built aside and renamed, so a crash never leaves a half-made WAL that looks real
    const tmp = `${dir}.tmp`;
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp, { recursive: true });
    const fh = await open(join(tmp, segmentName(0, 0)), "w+");
    try {
      await preallocate(fh, segmentSize);
      const { buf } = frameAll([crcRecord(), metadataRecord(metadata), snapshotRecord({ index: 0, term: 0 })], 0);
      await writeFully(fh, buf, 0);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsyncDir(tmp);
    // rename(2) may replace an empty directory; anything else in dir is not ours to delete
    await rmdir(dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== "ENOENT") throw new Error(`wal: cannot create in ${dir}: ${err.message}`);
    });
    await rename(tmp, dir);
    await fsyncDir(dirname(dir));
    return (await Wal.open(dir, { index: 0, term: 0 }, opts)).wal;
  }

  /**
   * Reads the log from the segment holding `after.index` on: entries with index > after.index,
   * the last hard state, and the metadata. Repairs a torn tail; throws WalCorruptError otherwise.
   */
  static async open(dir: string, after: WalSnapshot, opts: WalOptions = {}): Promise<WalOpenResult> {
    const segmentSize = opts.segmentSize ?? DEFAULT_SEGMENT_SIZE;
    const all = listSegments(dir);
    if (all.length === 0) throw new Error(`wal: no segments in ${dir}`);
    for (let i = 1; i < all.length; i++) {
      if (all[i]!.seq !== all[i - 1]!.seq + 1) throw corrupt("segment sequence gap before this file", join(dir, all[i]!.name), 0);
    }
    // like etcd, start at the last segment that can hold after.index: earlier ones predate the snapshot
    let start = -1;
    all.forEach((s, i) => {
      if (s.firstIndex <= after.index) start = i;
    });
    if (start < 0) throw new Error(`wal: no segment in ${dir} holds index ${after.index} (first is ${all[0]!.name})`);

    // an object, not lets: assignments inside the visitor would be invisible to narrowing below
    const st: { metadata: Uint8Array | null; hardState: HardState | null; lastEntry: number } = {
      metadata: null,
      hardState: null,
      lastEntry: -1,
    };
    const entries: Entry[] = [];
    let crc: number | null = null;
    let file = "";
    const visit = (type: RecordType, data: Uint8Array, off: number) => {
      switch (type) {
        case RecordType.entry: {
          const e = decodeEntry(data);
          st.lastEntry = e.index;
          if (e.index <= after.index) {
            entries.length = 0; // everything we kept came later in the log and is now overwritten
            return;
          }
          const next = after.index + entries.length + 1;
          if (e.index > next) throw corrupt(`entry ${e.index} follows ${next - 1}, entries missing`, file, off);
          // raft truncated and re-appended: the new entry replaces index and everything after it
          entries.length = e.index - after.index - 1;
          entries.push(e);
          return;
        }
        case RecordType.hardState:
          st.hardState = decodeHardState(data);
          return;
        case RecordType.metadata:
          if (st.metadata === null) st.metadata = data.slice();
          else if (!bytesEqual(st.metadata, data)) throw corrupt("metadata conflict", file, off);
          return;
        case RecordType.snapshot: {
          const s = decodeSnapshot(data);
          if (s.index === after.index && s.term !== after.term) {
            throw new Error(`wal: snapshot mismatch: log has ${s.index}/${s.term}, loading ${after.index}/${after.term}`);
          }
          return;
        }
        case RecordType.crc:
          return;
      }
    };

    const segs = all.slice(start);
    let tail = { end: 0, torn: false, size: 0, junkEnd: 0 };
    for (let i = 0; i < segs.length; i++) {
      file = join(dir, segs[i]!.name);
      const isLast = i === segs.length - 1;
      // read through a small window: a whole 64 MB segment in memory was the start-up peak
      const res = scanSegmentFile(file, crc, isLast, visit, isLast, opts.readChunk);
      crc = res.crc;
      if (isLast) tail = res;
    }
    const { metadata, hardState } = st;
    if (metadata === null) throw corrupt("no metadata record", join(dir, segs[0]!.name), 0);

    await removeTmpSegments(dir);
    const fh = await open(file, "r+");
    try {
      // zero whatever lies past the last good record, so later appends cannot land before stale bytes
      let changed = false;
      if (tail.torn) {
        log.warn(`torn write in ${file} at offset ${tail.end}: discarding ${tail.junkEnd - tail.end} bytes of a partial write`);
      }
      if (tail.junkEnd > tail.end) {
        await writeZeros(fh, tail.end, tail.junkEnd);
        changed = true;
      }
      if (tail.size < segmentSize) {
        await preallocate(fh, segmentSize);
        changed = true;
      }
      if (changed) await fh.sync();
    } catch (err) {
      await fh.close().catch(() => {});
      throw err;
    }
    const wal = new Wal(
      dir,
      metadata,
      segmentSize,
      opts,
      all,
      fh,
      tail.end,
      crc ?? 0,
      Math.max(st.lastEntry, after.index),
      hardState,
    );
    return { wal, metadata, hardState, entries };
  }

  /**
   * Appends entries then the hard state; resolves once they are on disk. Calls made while a write
   * is in flight share the next write and fdatasync (group commit), in call order.
   */
  save(hardState: HardState | null, entries: readonly Entry[]): Promise<void> {
    const records: PendingRecord[] = [];
    for (const e of entries) records.push(entryRecord(e));
    // etcd's MustSync: new entries, or a changed term or vote. A commit index can be re-learned.
    let mustSync = entries.length > 0;
    let hs: HardState | undefined;
    if (hardState && !sameHardState(this.queuedHardState, hardState)) {
      const prev = this.queuedHardState;
      if (!prev || prev.term !== hardState.term || prev.vote !== hardState.vote) mustSync = true;
      hs = { term: hardState.term, vote: hardState.vote, commit: hardState.commit };
      records.push(hardStateRecord(hs));
    }
    const last = entries[entries.length - 1];
    return this.enqueue(records, mustSync, last?.index, hs);
  }

  /** Records that a snapshot at marker exists; always synced. */
  saveSnapshot(marker: WalSnapshot): Promise<void> {
    return this.enqueue([snapshotRecord(marker)], true, undefined, undefined, marker.index);
  }

  /**
   * Deletes segments before the last one whose first index is <= index: their entries all precede
   * index (a snapshot covers them). The tail segment is never removed.
   */
  async releaseTo(index: number): Promise<void> {
    let keep = 0;
    this.segments.forEach((s, i) => {
      if (s.firstIndex <= index) keep = i;
    });
    if (keep === 0) return;
    const drop = this.segments.slice(0, keep);
    this.segments = this.segments.slice(keep);
    for (const s of drop) await rm(join(this.dir, s.name), { force: true });
    await fsyncDir(this.dir);
  }

  /** Waits for queued saves, syncs, and closes the files. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.running) await this.running;
    try {
      if (this.dirty && !this.failed) await this.fh.datasync();
    } finally {
      await this.fh.close();
      const p = this.pipeline;
      this.pipeline = null;
      if (p) {
        const tmp = await p.catch(() => null);
        if (tmp) {
          await tmp.fh.close();
          await rm(tmp.path, { force: true });
        }
      }
    }
  }

  /** Segment file names currently part of the log (oldest first). */
  segmentNames(): string[] {
    return this.segments.map((s) => s.name);
  }

  private enqueue(
    records: PendingRecord[],
    mustSync: boolean,
    lastIndex: number | undefined,
    hardState: HardState | undefined,
    snapIndex?: number,
  ): Promise<void> {
    if (this.closed) return Promise.reject(new Error("wal: closed"));
    if (this.failed) return Promise.reject(this.failed);
    for (const r of records) {
      if (recordLen(r) + 5 > MAX_BODY) return Promise.reject(new Error(`wal: record of ${recordLen(r)} bytes is too large`));
    }
    if (hardState) this.queuedHardState = hardState;
    return new Promise<void>((resolve, reject) => {
      const batch: Batch = { records, mustSync, resolve, reject };
      if (lastIndex !== undefined) batch.lastIndex = lastIndex;
      if (snapIndex !== undefined) batch.snapIndex = snapIndex;
      if (hardState) batch.hardState = hardState;
      this.queue.push(batch);
      // a microtask later, so saves issued in the same tick share the first write too
      this.running ??= Promise.resolve().then(() => this.drain());
    });
  }

  private async drain(): Promise<void> {
    for (;;) {
      // checked and cleared in one synchronous step: a save() racing the exit starts a new drain
      if (this.queue.length === 0 || this.failed) {
        this.running = null;
        return;
      }
      const batches = this.queue;
      this.queue = [];
      try {
        await this.append(batches);
      } catch (err) {
        this.fail(err, batches);
        continue;
      }
      for (const b of batches) b.resolve();
      if (this.offset >= this.segmentSize) {
        try {
          await this.cut();
        } catch (err) {
          this.fail(err, []);
        }
      }
    }
  }

  private async append(batches: Batch[]): Promise<void> {
    const records: PendingRecord[] = [];
    let mustSync = false;
    for (const b of batches) {
      for (const r of b.records) records.push(r);
      mustSync ||= b.mustSync;
    }
    if (records.length > 0) {
      const { buf, crc } = frameAll(records, this.crc);
      await appendAt(this.fh, buf, this.offset, this.opts.inlineWriteMax);
      this.stats.writes++;
      this.offset += buf.length;
      this.crc = crc;
      this.dirty = true;
    }
    if (mustSync && this.dirty) await this.sync();
    for (const b of batches) {
      if (b.lastIndex !== undefined) this.lastIndex = b.lastIndex;
      if (b.snapIndex !== undefined) this.lastIndex = Math.max(this.lastIndex, b.snapIndex);
      if (b.hardState) this.hardState = b.hardState;
    }
  }

  private async sync(): Promise<void> {
    const t0 = performance.now();
    await this.fh.datasync();
    const ms = performance.now() - t0;
    this.dirty = false;
    this.stats.syncs++;
    if (ms > SLOW_SYNC_MS) log.warn(`slow fdatasync: ${ms.toFixed(0)} ms`);
    this.opts.onSync?.(ms);
  }

  /** Once a write or fsync failed the file's state is unknown (fsyncgate): refuse everything after. */
  private fail(err: unknown, batches: Batch[]): void {
    const e = err instanceof Error ? err : new Error(String(err));
    this.failed = e;
    log.error(`write failed, log is read-only until restart: ${e.message}`);
    for (const b of [...batches, ...this.queue]) b.reject(e);
    this.queue = [];
  }

  private startPipeline(): void {
    const seq = this.segments[this.segments.length - 1]!.seq + 1;
    const p = createTmpSegment(this.dir, seq, this.segmentSize);
    p.catch(() => {}); // surfaced when cut() awaits it
    this.pipeline = p;
  }

  /** Seals the current segment and continues in the pre-made next one. */
  private async cut(): Promise<void> {
    if (this.dirty) await this.sync();
    const tmp = await this.pipeline!;
    this.pipeline = null;
    const seq = this.segments[this.segments.length - 1]!.seq + 1;
    const name = segmentName(seq, this.lastIndex + 1);
    // each segment can be read alone: it carries the chain's crc, the metadata and the hard state
    const header = [crcRecord(), metadataRecord(this.metadata)];
    if (this.hardState) header.push(hardStateRecord(this.hardState));
    const { buf, crc } = frameAll(header, this.crc);
    await writeFully(tmp.fh, buf, 0);
    await tmp.fh.datasync();
    await rename(tmp.path, join(this.dir, name));
    await fsyncDir(this.dir);
    const old = this.fh;
    this.fh = tmp.fh;
    this.offset = buf.length;
    this.crc = crc;
    this.segments.push({ seq, firstIndex: this.lastIndex + 1, name });
    await old.close();
    log.info(`cut segment ${name}`);
    this.startPipeline();
  }
}

// A node's durable storage as a crash sees it. Writes are appended as records (like the WAL); a
// sync makes everything written so far durable; a crash keeps the synced records plus a random
// prefix of the unsynced ones (a torn tail), never a later record without the earlier ones.
import { MemoryStorage } from "../../internal/raft/storage.ts";
import { type Entry, type HardState, type Snapshot, emptyHardState, emptySnapshot } from "../../internal/raft/types.ts";
import type { Prng } from "./prng.ts";

type Record =
  | { kind: "entry"; entry: Entry }
  | { kind: "hardState"; hs: HardState }
  /** A snapshot from the leader: replaces the whole log. */
  | { kind: "restore"; snap: Snapshot };

export class SimDisk {
  snapshot: Snapshot = emptySnapshot();
  hardState: HardState = emptyHardState();
  /** Durable entries; entries[i].index === base + i. */
  entries: Entry[] = [];
  base = 1;
  private unsynced: Record[] = [];

  write(snap: Snapshot | undefined, entries: Entry[], hs: HardState | undefined): void {
    if (snap) this.unsynced.push({ kind: "restore", snap });
    for (const entry of entries) this.unsynced.push({ kind: "entry", entry });
    if (hs) this.unsynced.push({ kind: "hardState", hs });
  }

  sync(): void {
    for (const r of this.unsynced) this.apply(r);
    this.unsynced = [];
  }

  /** The process died: unsynced records survive only as a prefix (possibly empty, possibly all). */
  crash(rng: Prng): number {
    const keep = rng.int(this.unsynced.length + 1);
    for (let i = 0; i < keep; i++) this.apply(this.unsynced[i]!);
    const lost = this.unsynced.length - keep;
    this.unsynced = [];
    return lost;
  }

  /** The app's own snapshot (synced, as etcd does), then the log up to compactIndex goes. */
  saveSnapshot(snap: Snapshot, compactIndex: number): void {
    this.sync();
    this.snapshot = snap;
    if (compactIndex >= this.base) {
      this.entries = this.entries.slice(compactIndex + 1 - this.base);
      this.base = compactIndex + 1;
    }
  }

  /** What a restarted process reads back. */
  load(): MemoryStorage {
    const s = new MemoryStorage();
    if (this.snapshot.index > 0) s.applySnapshot(this.snapshot);
    s.append(this.entries);
    s.setHardState(this.hardState);
    return s;
  }

  private apply(r: Record): void {
    switch (r.kind) {
      case "hardState":
        this.hardState = r.hs;
        return;
      case "restore":
        this.snapshot = r.snap;
        this.entries = [];
        this.base = r.snap.index + 1;
        return;
      case "entry": {
        const i = r.entry.index - this.base;
        if (i < 0 || i > this.entries.length) {
          throw new Error(`disk: entry ${r.entry.index} does not follow the log [${this.base}, ${this.base + this.entries.length})`);
        }
        if (i < this.entries.length) this.entries.length = i;
        this.entries.push(r.entry);
        return;
      }
    }
  }
}

// Group commit: Omaha requests that arrive together are applied in one transaction and answered
// after its commit (and, with a `sync`, after the WAL reached the disk). Each request gets a
// savepoint, so one that fails leaves nothing behind and does not undo its neighbours.
import type { Database } from "bun:sqlite";

interface Pending {
  fn: () => unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

export class Committer {
  private queue: Pending[] = [];
  private scheduled = false;
  /** Batches committed and requests in them (for /metrics). */
  batches = 0;
  items = 0;

  constructor(
    private readonly db: Database,
    /** Called when a whole batch rolled back, so caches filled inside it are dropped. */
    private readonly onRollback: () => void = () => {},
    /** Makes a committed batch durable (WalSync); the batch is answered when it resolves. */
    private readonly sync: (() => Promise<void>) | null = null,
  ) {}

  run<T>(fn: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ fn, resolve: resolve as (v: unknown) => void, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Commits whatever is queued now (at shutdown, before the database closes). */
  drain(): void {
    this.flush();
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return;
    const results: ({ ok: true; v: unknown } | { ok: false; e: unknown })[] = [];
    try {
      this.db.exec("BEGIN IMMEDIATE");
      for (const p of batch) {
        this.db.exec("SAVEPOINT req");
        try {
          results.push({ ok: true, v: p.fn() });
          this.db.exec("RELEASE req");
        } catch (e) {
          this.db.exec("ROLLBACK TO req");
          this.db.exec("RELEASE req");
          results.push({ ok: false, e });
        }
      }
      this.db.exec("COMMIT");
    } catch (e) {
      if (this.db.inTransaction) this.db.exec("ROLLBACK");
      this.onRollback();
      for (const p of batch) p.reject(e);
      return;
    }
    this.batches++;
    this.items += batch.length;
    const answer = () =>
      batch.forEach((p, i) => {
        const r = results[i]!;
        if (r.ok) p.resolve(r.v);
        else p.reject(r.e);
      });
    if (!this.sync) return answer();
    this.sync().then(answer, (e: unknown) => {
      for (const p of batch) p.reject(e);
    });
  }
}

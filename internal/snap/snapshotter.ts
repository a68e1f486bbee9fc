// Snapshot files: `<term %016x>-<index %016x>.snap`, each [magic][crc32 of data][data length][data].
// Written whole or not at all (temp file, fsync, rename, fsync dir); a damaged one is set aside as
// .broken and the next older one is used, as etcd does.
import { readdirSync } from "node:fs";
import { mkdir, open, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { logger } from "../log/log.ts";
import { fsyncDir, writeFully } from "../wal/segment.ts";

/** Exported so tests can watch the warnings. */
export const log = logger("snap");

export interface SnapshotFile {
  index: number;
  term: number;
  data: Uint8Array;
}

const MAGIC = 0x50534e43; // "CNSP" little-endian
const HEADER = 16;
/** etcd's --max-snapshots default. */
export const KEEP = 5;

const hex16 = (n: number) => n.toString(16).padStart(16, "0");

function snapName(term: number, index: number): string {
  return `${hex16(term)}-${hex16(index)}.snap`;
}

function parseSnapName(name: string): { term: number; index: number } | null {
  const m = /^([0-9a-f]{16})-([0-9a-f]{16})\.snap$/.exec(name);
  return m ? { term: parseInt(m[1]!, 16), index: parseInt(m[2]!, 16) } : null;
}

export class Snapshotter {
  private chain: Promise<unknown> = Promise.resolve();

  constructor(readonly dir: string) {}

  /** Snapshot file names, newest first. */
  list(): string[] {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return [];
    }
    return names
      .map((name) => ({ name, p: parseSnapName(name) }))
      .filter((x): x is { name: string; p: { term: number; index: number } } => x.p !== null)
      .sort((a, b) => b.p.term - a.p.term || b.p.index - a.p.index)
      .map((x) => x.name);
  }

  /** Saves are queued: two at once would race on the purge. */
  save(s: SnapshotFile): Promise<void> {
    const run = this.chain.then(() => this.write(s));
    this.chain = run.catch(() => {});
    return run;
  }

  private async write(s: SnapshotFile): Promise<void> {
    const t0 = performance.now();
    const name = snapName(s.term, s.index);
    const path = join(this.dir, name);
    const tmp = `${path}.tmp`;
    log.info(`saving snapshot ${name} (index ${s.index}, ${s.data.length} bytes)`);
    await mkdir(this.dir, { recursive: true });
    const head = new Uint8Array(HEADER);
    const view = new DataView(head.buffer);
    view.setUint32(0, MAGIC, true);
    view.setUint32(4, Bun.hash.crc32(s.data), true);
    view.setBigUint64(8, BigInt(s.data.length), true);
    const fh = await open(tmp, "w");
    try {
      // async writes run in the thread pool: a 20 MB snapshot does not stall requests
      await writeFully(fh, head, 0);
      await writeFully(fh, s.data, HEADER);
      await fh.sync();
    } catch (err) {
      await fh.close().catch(() => {});
      await rm(tmp, { force: true });
      throw err;
    }
    await fh.close();
    await rename(tmp, path);
    await fsyncDir(this.dir);
    await this.purge();
    log.info(`saved snapshot ${name} in ${(performance.now() - t0).toFixed(0)} ms`);
  }

  private async purge(): Promise<void> {
    for (const name of this.list().slice(KEEP)) await rm(join(this.dir, name), { force: true });
    // saves are serialized, so any temp file left is from a crash
    for (const name of readdirSync(this.dir)) {
      if (name.endsWith(".snap.tmp")) await rm(join(this.dir, name), { force: true });
    }
  }

  /** The newest snapshot that checks out; damaged ones are renamed .broken on the way. */
  async loadNewest(): Promise<SnapshotFile | null> {
    for (const name of this.list()) {
      const path = join(this.dir, name);
      const bytes = await Bun.file(path).bytes();
      const problem = check(bytes);
      if (problem === null) {
        const { term, index } = parseSnapName(name)!;
        return { term, index, data: bytes.subarray(HEADER) };
      }
      await rename(path, `${path}.broken`);
      log.warn(`snapshot ${path} is damaged (${problem}): renamed to ${name}.broken, trying an older one`);
    }
    return null;
  }
}

function check(bytes: Uint8Array): string | null {
  if (bytes.length < HEADER) return "truncated header";
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== MAGIC) return "bad magic";
  if (view.getBigUint64(8, true) !== BigInt(bytes.length - HEADER)) return "length mismatch";
  if (view.getUint32(4, true) !== Bun.hash.crc32(bytes.subarray(HEADER))) return "crc mismatch";
  return null;
}

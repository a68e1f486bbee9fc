// Snapshot files: `<term %016x>-<index %016x>.snap`, each [magic][crc32 of data][data length][data].
// Written whole or not at all (temp file, fsync, rename, fsync dir); a damaged one is set aside as
// .broken and the next older one is used, as etcd does.
import { closeSync, fstatSync, fsync, mkdirSync, openSync, readSync, readdirSync, rmSync, writeSync } from "node:fs";
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

/** A snapshot to write from pieces (see Snapshotter.saveChunks). */
export interface SnapshotChunks {
  index: number;
  term: number;
  chunks: Iterable<string | Uint8Array>;
}

/** A snapshot on disk whose crc checked out, read back in pieces rather than whole. */
export interface SnapshotRef {
  index: number;
  term: number;
  path: string;
  /** Bytes of data (the file without its header). */
  size: number;
  /**
   * The data in pieces of up to 1 MiB. Each piece is a view into one reused buffer: use it before
   * asking for the next. Throws at the end if the bytes no longer match the crc.
   */
  chunks(): Generator<Uint8Array>;
  /** The data as UTF-8 text, line by line (without the "\n"s); checked like chunks(). */
  lines(): Generator<string>;
}

const READ_CHUNK = 1 << 20;
/** Encoded text is written in blocks of this size (a piece larger than it takes several). */
const WRITE_BLOCK = 256 << 10;
const encoder = new TextEncoder();

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
  /** Temp files being written: a purge leaves them alone. */
  private readonly writing = new Set<string>();

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

  /**
   * Saves a snapshot given as pieces (strings are written as UTF-8), so it never has to exist as
   * one buffer. The pieces are consumed and written to the temp file before this returns, with
   * the crc computed on the way: they may be made lazily from live state (Store.snapshotChunks)
   * as long as nothing changes it meanwhile, which holds because nothing here yields. The fsync,
   * rename and purge then run in the background, queued behind earlier saves as save() is.
   */
  saveChunks(s: SnapshotChunks): Promise<void> {
    const t0 = performance.now();
    const name = snapName(s.term, s.index);
    const path = join(this.dir, name);
    const tmp = `${path}.tmp`;
    if (this.writing.has(tmp)) return Promise.reject(new Error(`snap: ${name} is already being saved`));
    let fd: number;
    let size: number;
    try {
      mkdirSync(this.dir, { recursive: true });
      fd = openSync(tmp, "w");
    } catch (err) {
      return Promise.reject(err);
    }
    this.writing.add(tmp);
    const fail = (err: unknown) => {
      try {
        closeSync(fd);
      } catch {
        // already closed
      }
      rmSync(tmp, { force: true });
      this.writing.delete(tmp);
      return Promise.reject(err);
    };
    try {
      // blocking writes into the page cache: the pieces must all be taken now, and the disk
      // only gets involved at the fsync below, which runs off the event loop
      size = writeChunksSync(fd, s.chunks);
    } catch (err) {
      return fail(err);
    }
    log.info(`saving snapshot ${name} (index ${s.index}, ${size} bytes)`);
    const run = this.chain.then(async () => {
      try {
        await new Promise<void>((resolve, reject) => fsync(fd, (err) => (err ? reject(err) : resolve())));
        closeSync(fd);
        await rename(tmp, path);
      } catch (err) {
        return fail(err);
      }
      this.writing.delete(tmp);
      await fsyncDir(this.dir);
      await this.purge();
      log.info(`saved snapshot ${name} in ${(performance.now() - t0).toFixed(0)} ms`);
    });
    this.chain = run.catch(() => {});
    return run;
  }

  private async write(s: SnapshotFile): Promise<void> {
    const t0 = performance.now();
    const name = snapName(s.term, s.index);
    const path = join(this.dir, name);
    const tmp = `${path}.tmp`;
    if (this.writing.has(tmp)) throw new Error(`snap: ${name} is already being saved`);
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
    // any temp file not being written now is from a crash
    for (const name of readdirSync(this.dir)) {
      const p = join(this.dir, name);
      if (name.endsWith(".snap.tmp") && !this.writing.has(p)) await rm(p, { force: true });
    }
  }

  /** The newest snapshot that checks out, read whole; damaged ones are renamed .broken on the way. */
  async loadNewest(): Promise<SnapshotFile | null> {
    const ref = await this.newest();
    if (ref === null) return null;
    const data = new Uint8Array(ref.size);
    let off = 0;
    for (const piece of ref.chunks()) {
      data.set(piece, off);
      off += piece.length;
    }
    return { index: ref.index, term: ref.term, data };
  }

  /**
   * The newest snapshot that checks out, verified by reading it in pieces (memory stays at one
   * piece however large the snapshot); damaged ones are renamed .broken on the way, as etcd does.
   */
  async newest(): Promise<SnapshotRef | null> {
    for (const name of this.list()) {
      const path = join(this.dir, name);
      let problem: string | null;
      let size = 0;
      try {
        size = verify(path);
        problem = null;
      } catch (err) {
        if (!(err instanceof Damaged)) throw err;
        problem = err.message;
      }
      if (problem === null) {
        const { term, index } = parseSnapName(name)!;
        return {
          index,
          term,
          path,
          size,
          chunks: () => rechecked(path, readData(path)),
          lines: () => rechecked(path, readLines(path)),
        };
      }
      await rename(path, `${path}.broken`);
      log.warn(`snapshot ${path} is damaged (${problem}): renamed to ${name}.broken, trying an older one`);
    }
    return null;
  }
}

class Damaged extends Error {}

/** Checks a snapshot file's header and crc; returns its data size or throws Damaged. */
function verify(path: string): number {
  let size = 0;
  for (const piece of readData(path)) size += piece.length;
  return size;
}

/**
 * The data of a snapshot file in pieces (one reused buffer), checked against the header as it
 * goes: Damaged is thrown before the first piece for a bad header, after the last for a bad crc.
 */
function* readData(path: string): Generator<Uint8Array> {
  const fd = openSync(path, "r");
  try {
    const fileSize = fstatSync(fd).size;
    if (fileSize < HEADER) throw new Damaged("truncated header");
    const head = new Uint8Array(HEADER);
    if (readFull(fd, head, 0) < HEADER) throw new Damaged("truncated header");
    const view = new DataView(head.buffer);
    if (view.getUint32(0, true) !== MAGIC) throw new Damaged("bad magic");
    const size = fileSize - HEADER;
    if (view.getBigUint64(8, true) !== BigInt(size)) throw new Damaged("length mismatch");
    const buf = new Uint8Array(Math.min(READ_CHUNK, Math.max(size, 1)));
    let crc = 0;
    for (let off = 0; off < size; ) {
      const n = readFull(fd, buf.subarray(0, Math.min(buf.length, size - off)), HEADER + off);
      if (n === 0) throw new Damaged("length mismatch");
      const piece = buf.subarray(0, n);
      crc = Bun.hash.crc32(piece, crc);
      off += n;
      yield piece;
    }
    if (view.getUint32(4, true) !== crc) throw new Damaged("crc mismatch");
  } finally {
    closeSync(fd);
  }
}

/** A file that checked out and then did not: not a damaged file to set aside, a real failure. */
function* rechecked<T>(path: string, g: Generator<T>): Generator<T> {
  try {
    yield* g;
  } catch (err) {
    if (err instanceof Damaged) throw new Error(`snap: ${path} changed after it was checked (${err.message})`);
    throw err;
  }
}

function* readLines(path: string): Generator<string> {
  const dec = new TextDecoder();
  let rest = "";
  for (const piece of readData(path)) {
    const text = rest + dec.decode(piece, { stream: true });
    let start = 0;
    for (let nl = text.indexOf("\n"); nl >= 0; nl = text.indexOf("\n", start)) {
      yield text.slice(start, nl);
      start = nl + 1;
    }
    rest = text.slice(start);
  }
  yield rest + dec.decode();
}

/** Reads until buf is full or the file ends; returns the bytes read. */
function readFull(fd: number, buf: Uint8Array, pos: number): number {
  let off = 0;
  while (off < buf.length) {
    const n = readSync(fd, buf, off, buf.length - off, pos + off);
    if (n === 0) break;
    off += n;
  }
  return off;
}

/** Writes the header placeholder, then the pieces, then the real header; returns the data size. */
function writeChunksSync(fd: number, chunks: Iterable<string | Uint8Array>): number {
  const writeAll = (b: Uint8Array, pos: number) => {
    for (let off = 0; off < b.length; ) off += writeSync(fd, b, off, b.length - off, pos + off);
  };
  writeAll(new Uint8Array(HEADER), 0);
  let pos = HEADER;
  let crc = 0;
  const put = (b: Uint8Array) => {
    crc = Bun.hash.crc32(b, crc);
    writeAll(b, pos);
    pos += b.length;
  };
  let block: Uint8Array | null = null;
  // a surrogate pair cut between two pieces is joined again, not written as two U+FFFDs
  let held = "";
  const text = (s: string) => {
    block ??= new Uint8Array(WRITE_BLOCK);
    while (s.length > 0) {
      const { read, written } = encoder.encodeInto(s, block);
      put(block.subarray(0, written));
      if (read === s.length) break;
      if (read === 0) throw new Error("snap: cannot encode text");
      s = s.slice(read);
    }
  };
  for (const c of chunks) {
    if (typeof c !== "string") {
      if (held !== "") text(held);
      held = "";
      put(c);
      continue;
    }
    let s = held + c;
    held = "";
    const last = s.charCodeAt(s.length - 1);
    if (last >= 0xd800 && last <= 0xdbff) {
      held = s.slice(-1);
      s = s.slice(0, -1);
    }
    text(s);
  }
  if (held !== "") text(held);
  const head = new Uint8Array(HEADER);
  const view = new DataView(head.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, crc, true);
  view.setBigUint64(8, BigInt(pos - HEADER), true);
  writeAll(head, 0);
  return pos - HEADER;
}

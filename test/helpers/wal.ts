// Fixtures shared by the WAL tests: throw-away log directories and entries a test can find again.
import { afterEach } from "bun:test";
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Entry } from "../../internal/kv/types.ts";
import { tempDir } from "./procs.ts";

const enc = new TextEncoder();

/** A function giving a fresh `member/wal` path per call; the directories go after each test. */
export function walDirs(prefix: string): () => string {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  return () => {
    const d = tempDir(prefix);
    dirs.push(d);
    return join(d, "member", "wal");
  };
}

/** Data unique to (index, term), so a test can find the record in the file. */
export function entry(index: number, term = 1, size = 150, fill = "x"): Entry {
  const tag = `<e${index}t${term}>`;
  return { index, term, type: 0, data: enc.encode(tag + fill.repeat(Math.max(0, size - tag.length))) };
}

export function walFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((n) => n.endsWith(".wal"))
    .sort();
}

/** File and byte offset of the frame holding entry (index, term), found by its data's tag. */
export function locate(dir: string, index: number, term = 1): { file: string; frame: number; dataAt: number } {
  const needle = Buffer.from(`<e${index}t${term}>`);
  for (const name of walFiles(dir)) {
    const file = join(dir, name);
    const at = readFileSync(file).indexOf(needle);
    // frame = 8 length bytes, crc, type, then varint term, varint index, entry type (1 byte each here)
    if (at >= 0) return { file, frame: at - 16, dataAt: at };
  }
  throw new Error(`entry ${index} not found`);
}

// Fixtures shared by the WAL tests: throw-away log directories and entries a test can find again.
import { afterEach } from "bun:test";
import { rmSync } from "node:fs";
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

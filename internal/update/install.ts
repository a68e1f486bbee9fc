// `coreos update-engine install`: writes the files of units.ts under an image root, each one
// atomically; a file already holding the same text and mode is left alone, so a rerun changes nothing.
import { chmodSync, readFileSync, statSync } from "node:fs";
import { under, writeAtomic } from "../systemd/paths.ts";
import { systemFiles } from "./units.ts";

const MODE = 0o644;

export interface Installed {
  /** Where the file is on this host (the root joined in). */
  path: string;
  changed: boolean;
}

function current(path: string): { content: string; mode: number } | null {
  try {
    return { content: readFileSync(path, "utf8"), mode: statSync(path).mode & 0o7777 };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
}

export function installSystemFiles(root: string, bin: string): Installed[] {
  return systemFiles(bin).map((f) => {
    const path = under(root, f.path);
    const now = current(path);
    if (now !== null && now.content === f.content && now.mode === MODE) return { path, changed: false };
    writeAtomic(path, f.content, MODE);
    // The temp file's mode went through the umask.
    if ((statSync(path).mode & 0o7777) !== MODE) chmodSync(path, MODE);
    return { path, changed: true };
  });
}

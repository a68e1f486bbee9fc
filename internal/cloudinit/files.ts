// Files written into the target root as coreos-cloudinit writes them (system.WriteFile): parents
// created 0755, a `cloudinit-temp*` file in the same directory, chmod to the exact mode (the umask
// does not apply), chown, then rename over the destination. A failure removes the temp file, so
// the destination is either the old file or the whole new one, never a part. No fsync, as the
// original: this guards readers against half a file, not a power cut (a config is applied at
// every boot, and hundreds of fsyncs would dominate applying it).
import { chmodSync, chownSync, closeSync, lstatSync, mkdirSync, openSync, readlinkSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { dirname, join, posix } from "node:path";
import { randomBytes } from "node:crypto";

/**
 * An absolute path of the configured system, placed inside `root` ("/" for the host). In a root,
 * symbolic links among the parents are followed as the booted system will follow them: an
 * absolute target is inside the root (an image's /var/run -> /run must not reach the build
 * host's /run), and `..` never climbs out of it. The last component is left alone (a rename
 * replaces a link rather than following it).
 */
export function inRoot(root: string, path: string): string {
  const p = posix.normalize(`/${path}`);
  if (root === "/") return p;
  const parts = p.split("/").filter((x) => x !== "");
  const last = parts.pop();
  let resolved: string[] = [];
  for (let hops = 0; parts.length > 0; ) {
    const part = parts.shift()!;
    if (part === "..") {
      resolved.pop();
      continue;
    }
    const candidate = [...resolved, part];
    let st;
    try {
      st = lstatSync(join(root, ...candidate));
    } catch {
      resolved = candidate;
      continue;
    }
    if (!st.isSymbolicLink()) {
      resolved = candidate;
      continue;
    }
    if (++hops > 40) throw new WriteError(`${p}: too many levels of symbolic links`);
    const target = readlinkSync(join(root, ...candidate));
    parts.unshift(...target.split("/").filter((x) => x !== "" && x !== "."));
    if (target.startsWith("/")) resolved = [];
  }
  return join(root, ...resolved, ...(last === undefined ? [] : [last]));
}

export interface Owner {
  /** -1 leaves it as it is (chown's `user` without `:group`). */
  uid: number;
  gid: number;
}

export class WriteError extends Error {}

function ensureDir(dir: string): void {
  try {
    if (!statSync(dir).isDirectory()) throw new WriteError(`${dir} is not a directory`);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    mkdirSync(dir, { recursive: true, mode: 0o755 });
  }
}

export function writeFileAtomic(path: string, data: Uint8Array | string, mode = 0o644, owner?: Owner): void {
  const dir = dirname(path);
  ensureDir(dir);
  const tmp = join(dir, `cloudinit-temp${randomBytes(5).toString("hex")}`);
  const fd = openSync(tmp, "wx", 0o600);
  try {
    try {
      const bytes = typeof data === "string" ? Buffer.from(data) : data;
      for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off, bytes.length - off);
    } finally {
      closeSync(fd);
    }
    chmodSync(tmp, mode);
    if (owner && (owner.uid !== -1 || owner.gid !== -1)) chownSync(tmp, owner.uid, owner.gid);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

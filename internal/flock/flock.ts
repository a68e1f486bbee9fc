// flock(2) through bun:ffi: node:fs has no flock and Bun adds none. The coordinator file's
// exclusive lock (locksmith B3) tells a second locksmithd that one is already running; the lock on a
// disk keeps two writers of its partition table (the daemon, a user's `disk` command) apart.
import { dlopen, FFIType, read, type Pointer } from "bun:ffi";

const LOCK_EX = 2;
const LOCK_NB = 4;
const EWOULDBLOCK = 11;
const EINTR = 4;

const SYMBOLS = {
  flock: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  __errno_location: { args: [], returns: FFIType.ptr },
} as const;

type Libc = ReturnType<typeof dlopen<typeof SYMBOLS>>["symbols"];
let libc: Libc | null = null;

function load(): Libc {
  if (libc) return libc;
  const errors: string[] = [];
  // glibc, then musl's names.
  for (const name of ["libc.so.6", "libc.musl-x86_64.so.1", "libc.musl-aarch64.so.1", "libc.so"]) {
    try {
      libc = dlopen(name, SYMBOLS).symbols;
      return libc;
    } catch (e) {
      errors.push(`${name}: ${(e as Error).message}`);
    }
  }
  throw new Error(`flock: cannot load libc (${errors.join("; ")})`);
}

/** Waits for an exclusive lock on an open fd; it is released when the fd is closed. */
export function lockExclusive(fd: number): void {
  const c = load();
  while (c.flock(fd, LOCK_EX) !== 0) {
    const errno = read.i32(c.__errno_location() as Pointer, 0);
    if (errno !== EINTR) throw new Error(`flock: errno ${errno}`);
  }
}

/**
 * Takes an exclusive lock on an open fd without waiting. False when another open file
 * description holds it; throws on any other failure.
 */
export function tryLockExclusive(fd: number): boolean {
  const c = load();
  for (;;) {
    if (c.flock(fd, LOCK_EX | LOCK_NB) === 0) return true;
    const errno = read.i32(c.__errno_location() as Pointer, 0);
    if (errno === EINTR) continue;
    if (errno === EWOULDBLOCK) return false;
    throw new Error(`flock: errno ${errno}`);
  }
}

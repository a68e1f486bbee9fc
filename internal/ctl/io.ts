// Where etcdctl's output goes. Writes are synchronous so that every line is out before the
// process exits, in the order it was printed, even mid-watch.
import { writeSync } from "node:fs";

export interface IO {
  out(s: string): void;
  err(s: string): void;
  /** All of stdin (etcdctl reads a missing <value> from it). */
  readStdin(): Promise<string>;
  /** A password from the terminal (not echoed) or one line of piped stdin. */
  readSecret(): Promise<string>;
  env: Record<string, string | undefined>;
}

/** os.Exit: unwinds to runCtl, which returns the code. */
export class Exit extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

/** etcdctl v2's exit codes (ctlv2/command/error.go). */
export const ExitCode = {
  Success: 0,
  BadArgs: 1,
  BadConnection: 2,
  BadAuth: 3,
  ServerError: 4,
  ClusterNotHealthy: 5,
} as const;

function writeAll(fd: number, s: string): void {
  const buf = Buffer.from(s);
  let off = 0;
  for (let spins = 0; off < buf.length; ) {
    try {
      off += writeSync(fd, buf, off);
      spins = 0;
    } catch (e) {
      // A non-blocking pipe that is full: wait for the reader, a bounded number of times.
      if ((e as NodeJS.ErrnoException).code !== "EAGAIN" || ++spins > 100000) throw e;
      Bun.sleepSync(1);
    }
  }
}

async function readSecret(): Promise<string> {
  const tty = process.stdin.isTTY === true;
  if (tty) Bun.spawnSync(["stty", "-echo"], { stdin: "inherit", stdout: "ignore", stderr: "ignore" });
  try {
    const it = console[Symbol.asyncIterator]();
    const line = await it.next();
    return line.done ? "" : String(line.value);
  } finally {
    if (tty) Bun.spawnSync(["stty", "echo"], { stdin: "inherit", stdout: "ignore", stderr: "ignore" });
  }
}

export function processIO(): IO {
  return {
    out: (s) => writeAll(1, s),
    err: (s) => writeAll(2, s),
    readStdin: () => Bun.stdin.text(),
    readSecret,
    env: process.env,
  };
}

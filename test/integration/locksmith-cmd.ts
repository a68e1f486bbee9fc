// How the tests run locksmith: the compiled binary once cmd/coreos.ts dispatches to it, else the
// same sources through bun (so the tests run before the wiring lands, and never skip).
import { join } from "node:path";
import { BIN, ROOT } from "../helpers/procs.ts";

function pick(): string[] {
  if (process.env.COREOS_CMD) return [...process.env.COREOS_CMD.split(" "), "locksmith"];
  const probe = Bun.spawnSync([BIN, "locksmith", "help"], { stdout: "ignore", stderr: "ignore" });
  if (probe.exitCode === 0) return [BIN, "locksmith"];
  return [process.execPath, join(ROOT, "cmd/locksmith.ts")];
}

export const LOCKSMITH: string[] = pick();

/**
 * Tests choose their bus: by default none (a socket that does not exist), so a system bus on the
 * machine running the tests never changes which path locksmith takes.
 */
export const NO_BUS = { DBUS_SYSTEM_BUS_ADDRESS: "unix:path=/nonexistent/coreos-test-no-bus" };

/** Runs one locksmith command to completion. */
export async function run(args: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> {
  const p = Bun.spawn([...LOCKSMITH, ...args], { env: { ...process.env, ...NO_BUS, ...env }, stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, out, err };
}

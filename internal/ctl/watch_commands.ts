// watch and exec-watch. Neither has a deadline; both end on SIGINT with exit 0, and end with
// exit 4 on the first error (etcdctl does not re-sync after error 401, it reports it).
import { accessSync, constants, statSync } from "node:fs";
import type { KeyResponse } from "../kvclient/keys.ts";
import { CanceledError } from "../kvclient/errors.ts";
import { handleError, printResponseKey } from "./format.ts";
import { Exit, ExitCode } from "./io.ts";
import { keyArg, type CommandFn } from "./key_commands.ts";
import type { Session } from "./session.ts";
import type { Watcher } from "../kvclient/watch.ts";

/** The next event, or null once SIGINT arrived. */
async function nextEvent(s: Session, w: Watcher): Promise<KeyResponse | null> {
  try {
    return await w.next(s.interrupt);
  } catch (e) {
    if (e instanceof CanceledError && s.interrupt.aborted) return null;
    handleError(s.io, ExitCode.ServerError, e);
  }
}

export const watchCommand: CommandFn = async (s, args, f) => {
  const c = await s.mustNewClient();
  const key = keyArg(s, args);
  const recursive = f.get("recursive") === true;
  const w = c.watcher(key, { afterIndex: Number(f.get("after-index") ?? 0), recursive });
  for (;;) {
    const r = await nextEvent(s, w);
    if (r === null) return;
    if (r.node.dir) continue;
    if (recursive) s.io.out(`[${r.action}] ${r.node.key ?? ""}\n`);
    printResponseKey(s.io, r, s.output);
    if (f.get("forever") !== true) return;
  }
};

export const execWatchCommand: CommandFn = async (s, args, f) => {
  const c = await s.mustNewClient();
  if (args.length < 2) handleError(s.io, ExitCode.BadArgs, new Error("key and command to exec required"));
  // etcdctl's own rule: with a "--" after the key, key comes first; otherwise the flag parser
  // already swallowed the "--" and the key is the LAST argument.
  const sep = args.findIndex((a, i) => a === "--" && i !== 0);
  const [key, cmd] = sep >= 0 ? [args[0]!, args.slice(2)] : [args[args.length - 1]!, args.slice(0, -1)];
  const w = c.watcher(key, { afterIndex: Number(f.get("after-index") ?? 0), recursive: f.get("recursive") === true });
  for (;;) {
    const r = await nextEvent(s, w);
    if (r === null) return;
    if (r.node.dir) {
      s.io.err(`Ignored dir ${r.node.key ?? ""} change\n`);
      continue;
    }
    run(s, cmd, r);
  }
};

/** Starts the command without waiting for it, its output going straight to ours. */
function run(s: Session, cmd: string[], r: KeyResponse): void {
  const problem = lookPath(cmd[0] ?? "", s.io.env.PATH ?? "");
  if (problem !== null) {
    s.io.err(problem);
    throw new Exit(ExitCode.BadArgs);
  }
  Bun.spawn(cmd, {
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
    env: {
      ...s.io.env,
      ETCD_WATCH_ACTION: r.action,
      ETCD_WATCH_MODIFIED_INDEX: String(r.node.modifiedIndex ?? 0),
      ETCD_WATCH_KEY: r.node.key ?? "",
      ETCD_WATCH_VALUE: r.node.value ?? "",
    },
  });
}

/** Go's exec.Command + Start failures, in Go's words (null when the command can start). */
function lookPath(name: string, path: string): string | null {
  const executable = (p: string): boolean => {
    try {
      accessSync(p, constants.X_OK);
      return statSync(p).isFile();
    } catch {
      return false;
    }
  };
  if (name.includes("/")) return executable(name) ? null : `fork/exec ${name}: no such file or directory`;
  for (const dir of path.split(":")) if (executable(`${dir === "" ? "." : dir}/${name}`)) return null;
  return `exec: "${name}": executable file not found in $PATH`;
}

// Directory commands: mkdir, setdir, updatedir, rmdir, ls. In simple format etcdctl prints
// nothing for directories; the other formats print the response like any key's.
import type { NodeJSON } from "../kv/types.ts";
import type { KeyResponse } from "../kvclient/keys.ts";
import { handleError, printResponseKey } from "./format.ts";
import { ExitCode } from "./io.ts";
import { keyArg, type CommandFn, type Flags } from "./key_commands.ts";
import type { Session } from "./session.ts";

const ttlOf = (f: Flags) => Number(f.get("ttl") ?? 0);

/** mkdirCommandFunc with the three prevExist conditions (must not exist / either / must exist). */
function dirCommand(prevExist: boolean | undefined): CommandFn {
  return async (s, args, f) => {
    const c = await s.mustNewClient();
    const key = keyArg(s, args);
    let r: KeyResponse;
    try {
      r = await c.set(key, "", { ttl: ttlOf(f), dir: true, prevExist, signal: s.totalTimeout() });
    } catch (e) {
      handleError(s.io, ExitCode.ServerError, e);
    }
    if (s.output !== "simple") printResponseKey(s.io, r, s.output);
  };
}

export const mkdirCommand = dirCommand(false);
export const setdirCommand = dirCommand(undefined);
export const updatedirCommand = dirCommand(true);

export const rmdirCommand: CommandFn = async (s, args) => {
  const c = await s.mustNewClient();
  const key = keyArg(s, args);
  let r: KeyResponse;
  try {
    r = await c.delete(key, { dir: true, signal: s.totalTimeout() });
  } catch (e) {
    handleError(s.io, ExitCode.ServerError, e);
  }
  if (!r.node.dir || s.output !== "simple") printResponseKey(s.io, r, s.output);
};

export const lsCommand: CommandFn = async (s, args, f) => {
  const c = await s.mustNewClient();
  const key = args[0] ?? "/";
  let r: KeyResponse;
  try {
    r = await c.get(key, {
      sorted: f.get("sort") === true,
      recursive: f.get("recursive") === true,
      quorum: f.get("quorum") === true,
      signal: s.totalTimeout(),
    });
  } catch (e) {
    handleError(s.io, ExitCode.ServerError, e);
  }
  if (s.output !== "simple") return printResponseKey(s.io, r, s.output);
  // Like Unix ls: a key lists as itself, a directory as its children (-p marks directories).
  let out = r.node.dir ? "" : `${r.node.key ?? ""}\n`;
  const walk = (n: NodeJSON): void => {
    out += `${n.key ?? ""}${n.dir && f.get("p") === true ? "/" : ""}\n`;
    for (const child of n.nodes ?? []) walk(child);
  };
  for (const n of r.node.nodes ?? []) walk(n);
  s.io.out(out);
};

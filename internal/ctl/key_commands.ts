// Key commands: set, mk, update, get, rm (ctlv2/command/*_command.go). Each builds the client
// (syncing) before it looks at its arguments, as etcdctl does, so errors come in the same order.
import type { FlagValue } from "./goflag.ts";
import { handleError, printResponseKey } from "./format.ts";
import { Exit, ExitCode } from "./io.ts";
import type { Session } from "./session.ts";

export type Flags = Map<string, FlagValue>;
export type CommandFn = (s: Session, args: string[], f: Flags) => Promise<void>;

const int = (f: Flags, n: string) => Number(f.get(n) ?? 0);
const bool = (f: Flags, n: string) => f.get(n) === true;
const str = (f: Flags, n: string) => String(f.get(n) ?? "");

/** Go's uint64(int): a negative index wraps around, as it does in etcdctl. */
function uint64(n: number): number {
  return n < 0 ? Number(BigInt.asUintN(64, BigInt(n))) : n;
}

export function keyArg(s: Session, args: string[]): string {
  if (args.length === 0) handleError(s.io, ExitCode.BadArgs, new Error("key required"));
  return args[0]!;
}

/** argOrStdin: the value argument, else all of stdin; empty is "value required". */
async function valueArg(s: Session, args: string[]): Promise<string> {
  if (args.length > 1) return args[1]!;
  let v = "";
  try {
    v = await s.io.readStdin();
  } catch {
    v = "";
  }
  if (v === "") handleError(s.io, ExitCode.BadArgs, new Error("value required"));
  return v;
}

export const setCommand: CommandFn = async (s, args, f) => {
  const c = await s.mustNewClient();
  const key = keyArg(s, args);
  const value = await valueArg(s, args);
  try {
    const r = await c.set(key, value, {
      ttl: int(f, "ttl"),
      prevValue: str(f, "swap-with-value"),
      prevIndex: uint64(int(f, "swap-with-index")),
      signal: s.totalTimeout(),
    });
    printResponseKey(s.io, r, s.output);
  } catch (e) {
    handleError(s.io, ExitCode.ServerError, e);
  }
};

export const mkCommand: CommandFn = async (s, args, f) => {
  const c = await s.mustNewClient();
  const key = keyArg(s, args);
  const value = await valueArg(s, args);
  const ttl = int(f, "ttl");
  try {
    const signal = s.totalTimeout();
    const r = bool(f, "in-order") ? await c.createInOrder(key, value, { ttl, signal }) : await c.create(key, value, { ttl, signal });
    printResponseKey(s.io, r, s.output);
  } catch (e) {
    handleError(s.io, ExitCode.ServerError, e);
  }
};

export const updateCommand: CommandFn = async (s, args, f) => {
  const c = await s.mustNewClient();
  const key = keyArg(s, args);
  const value = await valueArg(s, args);
  try {
    const r = await c.update(key, value, { ttl: int(f, "ttl"), signal: s.totalTimeout() });
    printResponseKey(s.io, r, s.output);
  } catch (e) {
    handleError(s.io, ExitCode.ServerError, e);
  }
};

export const getCommand: CommandFn = async (s, args, f) => {
  const c = await s.mustNewClient();
  const key = keyArg(s, args);
  let r;
  try {
    r = await c.get(key, { sorted: bool(f, "sort"), quorum: bool(f, "quorum"), signal: s.totalTimeout() });
  } catch (e) {
    handleError(s.io, ExitCode.ServerError, e);
  }
  if (r.node.dir) {
    s.io.err(`${r.node.key ?? ""}: is a directory\n`);
    throw new Exit(ExitCode.BadArgs);
  }
  printResponseKey(s.io, r, s.output);
};

export const rmCommand: CommandFn = async (s, args, f) => {
  const c = await s.mustNewClient();
  const key = keyArg(s, args);
  let r;
  try {
    r = await c.delete(key, {
      recursive: bool(f, "recursive"),
      dir: bool(f, "dir"),
      prevValue: str(f, "with-value"),
      prevIndex: uint64(int(f, "with-index")),
      signal: s.totalTimeout(),
    });
  } catch (e) {
    handleError(s.io, ExitCode.ServerError, e);
  }
  if (!r.node.dir || s.output !== "simple") printResponseKey(s.io, r, s.output);
};

// etcdctl v2's command dispatch, as urfave/cli v1.22 runs it: global flags (no reordering),
// then the command with its own flags (reordered), help and usage errors on the same streams.
import { clusterHealthCommand } from "./cluster_health.ts";
import { lsCommand, mkdirCommand, rmdirCommand, setdirCommand, updatedirCommand } from "./dir_commands.ts";
import { FlagError, HELP_FLAG, parseFlags, reorderArgs, type Parsed } from "./goflag.ts";
import { appHelp, commandHelp, helpHelp, memberHelp } from "./help.ts";
import { Exit, ExitCode, type IO } from "./io.ts";
import { getCommand, mkCommand, rmCommand, setCommand, updateCommand, type CommandFn } from "./key_commands.ts";
import { memberAddCommand, memberListCommand, memberRemoveCommand, memberUpdateCommand } from "./member_commands.ts";
import { Session } from "./session.ts";
import { COMMANDS, CTL_VERSION, GLOBAL_FLAGS, MEMBER_COMMANDS, VERSION_FLAG, type CommandSpec } from "./spec.ts";
import { execWatchCommand, watchCommand } from "./watch_commands.ts";

const ACTIONS: Record<string, CommandFn> = {
  "cluster-health": clusterHealthCommand,
  mk: mkCommand,
  mkdir: mkdirCommand,
  rm: rmCommand,
  rmdir: rmdirCommand,
  get: getCommand,
  ls: lsCommand,
  set: setCommand,
  setdir: setdirCommand,
  update: updateCommand,
  updatedir: updatedirCommand,
  watch: watchCommand,
  "exec-watch": execWatchCommand,
};

const MEMBER_ACTIONS: Record<string, CommandFn> = {
  list: memberListCommand,
  add: memberAddCommand,
  remove: memberRemoveCommand,
  update: memberUpdateCommand,
};

/** Runs etcdctl with `argv` (the arguments after the program name); resolves to the exit code. */
export async function runApp(argv: string[], io: IO, interrupt: AbortSignal): Promise<number> {
  try {
    await main(argv, io, interrupt);
    return ExitCode.Success;
  } catch (e) {
    if (e instanceof Exit) return e.code;
    throw e;
  }
}

/** urfave prints usage errors with the help on stdout; main() then prints the error on stderr. */
function usageError(io: IO, e: unknown, prefix: string, help: string): never {
  if (!(e instanceof FlagError)) throw e;
  io.out(`${prefix} ${e.message}\n\n${help}`);
  io.err(`${e.message}\n`);
  throw new Exit(ExitCode.BadArgs);
}

function noHelpTopic(io: IO, name: string): never {
  io.err(`No help topic for '${name}'\n`);
  throw new Exit(3);
}

async function main(argv: string[], io: IO, interrupt: AbortSignal): Promise<void> {
  let g: Parsed;
  try {
    g = parseFlags([...GLOBAL_FLAGS, HELP_FLAG, VERSION_FLAG], argv);
  } catch (e) {
    usageError(io, e, "Incorrect Usage.", appHelp());
  }
  if (g.values.get("help") === true) return io.out(appHelp());
  if (g.values.get("version") === true) return io.out(`etcdctl version: ${CTL_VERSION}\nAPI version: 2\n`);

  const [name, ...rest] = g.args;
  if (name === undefined) return io.out(appHelp());
  if (name === "help" || name === "h") return showHelp(io, rest[0]);
  const spec = COMMANDS.find((c) => c.name === name);
  if (!spec) noHelpTopic(io, name);
  const session = new Session(io, g.values, interrupt);
  if (name === "member") return runMember(session, rest);
  return runCommand(session, spec, rest, ACTIONS[name]!);
}

function showHelp(io: IO, topic: string | undefined): void {
  if (topic === undefined) return io.out(appHelp());
  if (topic === "help" || topic === "h") return io.out(helpHelp());
  const spec = COMMANDS.find((c) => c.name === topic);
  if (!spec) noHelpTopic(io, topic);
  io.out(commandHelp(spec));
}

async function runCommand(s: Session, spec: CommandSpec, args: string[], fn: CommandFn, parent = ""): Promise<void> {
  const defs = [...spec.flags, HELP_FLAG];
  let p: Parsed;
  try {
    p = parseFlags(defs, reorderArgs(defs, args));
  } catch (e) {
    usageError(s.io, e, "Incorrect Usage:", commandHelp(spec, parent));
  }
  if (p.values.get("help") === true) return s.io.out(commandHelp(spec, parent));
  await fn(s, p.args, p.values);
}

/** `member` is a nested app: its own help flag and help command, then the subcommand. */
async function runMember(s: Session, args: string[]): Promise<void> {
  let p: Parsed;
  try {
    p = parseFlags([HELP_FLAG], args);
  } catch (e) {
    usageError(s.io, e, "Incorrect Usage.", memberHelp());
  }
  if (p.values.get("help") === true) return s.io.out(memberHelp());
  const [name, ...rest] = p.args;
  if (name === undefined) return s.io.out(memberHelp());
  if (name === "help" || name === "h") {
    if (rest[0] === undefined) return s.io.out(memberHelp());
    const sub = MEMBER_COMMANDS.find((c) => c.name === rest[0]);
    if (!sub) noHelpTopic(s.io, rest[0]);
    return s.io.out(commandHelp(sub, "member"));
  }
  const sub = MEMBER_COMMANDS.find((c) => c.name === name);
  if (!sub) noHelpTopic(s.io, name);
  return runCommand(s, sub, rest, MEMBER_ACTIONS[name]!, "member");
}

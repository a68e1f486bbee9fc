// Help screens in urfave/cli v1.22's layout (templates rendered through Go's tabwriter).
import { HELP_FLAG, goQuote, type FlagDef } from "./goflag.ts";
import { COMMANDS, CTL_VERSION, GLOBAL_FLAGS, HELP_COMMAND, MEMBER_COMMANDS, VERSION_FLAG, type CommandSpec } from "./spec.ts";

/** Aligns "a\tb" lines in consecutive runs, as text/tabwriter with padding 2 does. */
function tabulate(lines: string[]): string {
  const out: string[] = [];
  let block: string[][] = [];
  const flush = () => {
    const width = Math.max(0, ...block.map((c) => c[0]!.length)) + 2;
    for (const c of block) out.push(c[0]!.padEnd(width) + c.slice(1).join("\t"));
    block = [];
  };
  for (const l of lines) {
    if (l.includes("\t")) block.push(l.split("\t"));
    else {
      flush();
      out.push(l);
    }
  }
  flush();
  return out.join("\n");
}

function goDuration(ms: number): string {
  if (ms === 0) return "0s";
  if (ms % 3600000 === 0) return `${ms / 3600000}h0m0s`;
  if (ms % 60000 === 0) return `${ms / 60000}m0s`;
  if (ms >= 1000) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/** urfave's stringifyFlag: names with placeholders, usage, default. */
export function flagLine(d: FlagDef): string {
  let usage = d.usage;
  let placeholder = d.kind === "bool" ? "" : "value";
  const bt = /`([^`]*)`/.exec(usage);
  if (bt) {
    placeholder = bt[1]!;
    usage = usage.slice(0, bt.index) + bt[1] + usage.slice(bt.index + bt[0].length);
  }
  const names = d.names.map((n) => (n.length === 1 ? `-${n}` : `--${n}`) + (placeholder ? ` ${placeholder}` : "")).join(", ");
  let def = "";
  if (d.kind === "string" && d.defaultValue) def = ` (default: ${goQuote(String(d.defaultValue))})`;
  if (d.kind === "int") def = ` (default: ${d.defaultValue ?? 0})`;
  if (d.kind === "duration") def = ` (default: ${goDuration(Number(d.defaultValue ?? 0))})`;
  return `${names}\t${usage}${def}`;
}

export function appHelp(): string {
  const cmds = [...COMMANDS.map((c) => `   ${c.name}\t${c.usage}`), `   ${HELP_COMMAND.names.join(", ")}\t${HELP_COMMAND.usage}`];
  const flags = [...GLOBAL_FLAGS, HELP_FLAG, VERSION_FLAG].map((f) => `   ${flagLine(f)}`);
  return `${tabulate([
    "NAME:",
    "   etcdctl - A simple command line client for etcd.",
    "",
    "USAGE:",
    "   etcdctl [global options] command [command options] [arguments...]",
    "",
    "VERSION:",
    `   ${CTL_VERSION}`,
    "",
    "COMMANDS:",
    ...cmds,
    "",
    "GLOBAL OPTIONS:",
    ...flags,
  ])}\n`;
}

/** One command's help; `parent` is "member" for the member subcommands. */
export function commandHelp(c: CommandSpec, parent = ""): string {
  const helpName = `etcdctl ${parent ? `${parent} ` : ""}${c.name}`;
  const lines = ["NAME:", `   ${helpName} - ${c.usage}`, "", "USAGE:"];
  lines.push(`   ${helpName}${c.flags.length ? " [command options]" : ""} ${c.argsUsage || "[arguments...]"}`);
  if (c.description) lines.push("", "DESCRIPTION:", `   ${c.description}`);
  if (c.flags.length) lines.push("", "OPTIONS:", ...c.flags.map((f) => `   ${flagLine(f)}`), "   ");
  return `${tabulate(lines)}\n`;
}

/** `etcdctl member` on its own: the subcommand app's help. */
export function memberHelp(): string {
  return `${tabulate([
    "NAME:",
    "   etcdctl member - member add, remove and list subcommands",
    "",
    "USAGE:",
    "   etcdctl member command [command options] [arguments...]",
    "",
    "COMMANDS:",
    ...MEMBER_COMMANDS.map((c) => `   ${c.name}\t${c.usage}`),
    "",
    "OPTIONS:",
    `   ${flagLine(HELP_FLAG)}`,
    "   ",
  ])}\n`;
}

/** `etcdctl help help`: urfave renders the help command with an empty name. */
export function helpHelp(): string {
  return `NAME:\n    - ${HELP_COMMAND.usage}\n\nUSAGE:\n    [command]\n`;
}

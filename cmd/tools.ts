// The multi-call table: which subcommand a program name or first argument means.
import { basename } from "node:path";

export type Tool = "kv" | "ctl" | "fleet" | "locksmith" | "update-engine" | "cloudinit" | "supervisor";

export const TOOLS: Record<Tool, string> = {
  kv: "etcd-compatible key-value store (`kv serve`); also runs as `etcd`",
  ctl: "etcdctl: the key-value store's command-line client; also runs as `etcdctl`",
  fleet: "cluster-wide init system (fleetd, fleetctl)",
  locksmith: "reboot coordination (locksmithd, locksmithctl)",
  "update-engine": "Omaha updates into the passive USR partition (update_engine, update_engine_client)",
  cloudinit: "configure the host from cloud-config (coreos-cloudinit)",
  supervisor: "run units without systemd: the process supervisor behind the unit manager",
};

/** Program names the binary answers to when symlinked, with the words they stand for. */
const ALIASES: Record<string, { tool: Tool; prefix: string[] }> = {
  etcd: { tool: "kv", prefix: ["serve"] },
  etcdctl: { tool: "ctl", prefix: [] },
  fleetd: { tool: "fleet", prefix: ["fleetd"] },
  fleetctl: { tool: "fleet", prefix: ["fleetctl"] },
  locksmithd: { tool: "locksmith", prefix: ["locksmithd"] },
  locksmithctl: { tool: "locksmith", prefix: ["locksmithctl"] },
  update_engine: { tool: "update-engine", prefix: ["daemon"] },
  update_engine_client: { tool: "update-engine", prefix: ["client"] },
  "coreos-cloudinit": { tool: "cloudinit", prefix: [] },
};

export const ALIAS_NAMES = Object.keys(ALIASES);

export type Dispatch = { tool: Tool; args: string[] } | { tool: null; args: string[] };

/** argv0's basename picks the tool when it is an alias; otherwise the first argument does. */
export function dispatch(argv0: string, args: string[]): Dispatch {
  const alias = ALIASES[basename(argv0)];
  if (alias) return { tool: alias.tool, args: [...alias.prefix, ...args] };
  const first = args[0];
  if (first !== undefined && first in TOOLS) return { tool: first as Tool, args: args.slice(1) };
  return { tool: null, args };
}

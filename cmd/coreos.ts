// Entry point of the multi-call binary: the program name (etcd, etcdctl, ...) or the first
// argument picks the tool; each tool's file parses its own flags.
import { defineCommand, runMain } from "citty";
import { dispatch, TOOLS, type Tool } from "./tools.ts";
import pkg from "../package.json" with { type: "json" };
import { ETCD_VERSION } from "../internal/kv/version.ts";

async function run(tool: Tool, args: string[]): Promise<number> {
  switch (tool) {
    case "kv":
      return (await import("./kv.ts")).runKv(args);
    case "ctl":
      return (await import("./ctl.ts")).runCtl(args);
    case "locksmith":
      return (await import("./locksmith.ts")).runLocksmith(args);
    case "update-engine":
      return (await import("./update-engine.ts")).runUpdateEngine(args);
    case "cloudinit":
      return (await import("./cloudinit.ts")).runCloudinit(args);
    case "supervisor":
      return (await import("./supervisor.ts")).runSupervisor(args);
    default:
      if (args.includes("--help") || args.includes("-h")) {
        process.stdout.write(`coreos ${tool}: ${TOOLS[tool]}\n\nNot built yet in this version (${pkg.version}).\n`);
        return 0;
      }
      process.stderr.write(`coreos: ${tool} is not built yet in this version (${pkg.version})\n`);
      return 2;
  }
}

const d = dispatch(process.argv0, process.argv.slice(2));
if (d.tool !== null) {
  process.exit(await run(d.tool, d.args));
} else if (d.args[0] !== undefined && !["--help", "-h", "--version"].includes(d.args[0])) {
  process.stderr.write(`coreos: unknown ${d.args[0].startsWith("-") ? "flag" : "command"} "${d.args[0]}" (try: coreos --help)\n`);
  process.exit(2);
} else {
  const main = defineCommand({
    meta: {
      name: "coreos",
      version: `${pkg.version} (etcd API v2, etcd server ${ETCD_VERSION})`,
      description: "The coreos userland in one binary. Symlink it as etcd, etcdctl, fleetd, fleetctl, locksmithd, locksmithctl, update_engine, update_engine_client or coreos-cloudinit to run that tool.",
    },
    subCommands: Object.fromEntries(
      Object.entries(TOOLS).map(([name, description]) => [name, defineCommand({ meta: { name, description } })]),
    ),
  });
  if (d.args.length === 0) d.args.push("--help");
  await runMain(main, { rawArgs: d.args });
}

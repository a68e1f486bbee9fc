// coreos update-engine: the verbs of the update system, one file each under cmd/update-engine/.
// `update_engine` is `daemon`, `update_engine_client` is `client`.
import { pickCommand } from "./subcommand.ts";

const VERBS = {
  daemon: "the update engine daemon (update_engine)",
  client: "talk to the daemon: status, check, update, watch, reset (update_engine_client)",
  disk: "GPT tables: show, init, prioritize, next, mark-good",
  payload: "CrAU payloads: build, verify, apply",
  serve: "the Omaha update server with rollout policy, API and dashboard",
  admin: "the update server's admin CLI",
  install: "write update-engine.service and the com.coreos.update1 bus policy under --root",
} as const;
type Verb = keyof typeof VERBS;

function help(): string {
  const w = Math.max(...Object.keys(VERBS).map((k) => k.length));
  return `Usage: coreos update-engine <verb> [flags]\n\n${Object.entries(VERBS)
    .map(([k, d]) => `  ${k.padEnd(w)}  ${d}`)
    .join("\n")}\n`;
}

export async function runUpdateEngine(args: string[]): Promise<number> {
  const picked = pickCommand(args, VERBS, { name: "coreos update-engine", help, word: "verb" });
  if ("exit" in picked) return picked.exit;
  const mod = await load(picked.cmd);
  return mod.run(picked.rest);
}

// Static import paths so `bun build --compile` bundles every verb.
function load(verb: Verb): Promise<{ run(args: string[]): Promise<number> }> {
  switch (verb) {
    case "daemon": return import("./update-engine/daemon.ts");
    case "client": return import("./update-engine/client.ts");
    case "disk": return import("./update-engine/disk.ts");
    case "payload": return import("./update-engine/payload.ts");
    case "serve": return import("./update-engine/serve.ts");
    case "admin": return import("./update-engine/admin.ts");
    case "install": return import("./update-engine/install.ts");
  }
}

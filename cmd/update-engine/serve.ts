// coreos update-engine serve: the Omaha update server (CoreUpdate/Nebraska's job). Flags here;
// everything else in internal/updateserver.
import { writeFileSync } from "node:fs";
import { FlagError, parseFlags, usage, type FlagDef } from "../../internal/flags/flags.ts";
import { log } from "../../internal/log/log.ts";
import { DURABILITIES, type Durability } from "../../internal/updateserver/db.ts";
import { createUpdateServer } from "../../internal/updateserver/server.ts";

const s = (d: string, description: string): FlagDef => ({ kind: "string", default: d, description });

const FLAGS = {
  "data-dir": s("/var/lib/coreos-update-server", "directory of the database and the hosted payloads"),
  listen: s("http://127.0.0.1:8000", "URL to listen on (http://host:port)"),
  "public-url": s("", "base URL machines reach this server at, for hosted payload URLs (default: from each request's Host)"),
  "token-file": s("", "at first start, also write the admin token to this file (mode 0600)"),
  durability: s(
    "power",
    "process: an acknowledged Omaha request survives kill -9 and any server crash; power: also a power loss (the WAL is fdatasync'ed after each group commit, before the answers)",
  ),
  "max-payload-size": { kind: "uint", default: 8 * 1024 * 1024 * 1024, description: "largest payload upload accepted, in bytes" } as FlagDef,
  debug: { kind: "bool", default: false, description: "debug logging" } as FlagDef,
};

function listenAddress(raw: string): { hostname: string; port: number } {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new FlagError(`invalid -listen "${raw}": want http://host:port`);
  }
  if (u.protocol !== "http:") throw new FlagError(`invalid -listen "${raw}": only http:// is served (put TLS in front)`);
  const port = u.port === "" ? 80 : Number(u.port);
  return { hostname: u.hostname.replace(/^\[|\]$/g, ""), port };
}

export async function run(args: string[]): Promise<number> {
  let p;
  try {
    p = parseFlags(FLAGS, args, process.env as Record<string, string | undefined>, "UPDATE_SERVER");
    if (p.help) {
      process.stdout.write(`Usage: coreos update-engine serve [flags]\n\n${usage(FLAGS, "UPDATE_SERVER")}\n`);
      return 0;
    }
    if (p.positionals.length > 0) throw new FlagError(`unexpected argument "${p.positionals[0]}"`);
    if (!DURABILITIES.includes(p.values.durability as Durability)) {
      throw new FlagError(`invalid value "${p.values.durability}" for flag -durability: want ${DURABILITIES.join(" or ")}`);
    }
  } catch (e) {
    if (e instanceof FlagError) {
      process.stderr.write(`${e.message}\n`);
      return 2;
    }
    throw e;
  }
  const v = p.values;
  if (v.debug) log.level = 4;
  let addr;
  try {
    addr = listenAddress(String(v.listen));
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    return 2;
  }
  const l = log.withTag("update-server");
  let srv;
  try {
    srv = createUpdateServer({ dataDir: String(v["data-dir"]), publicUrl: v["public-url"] ? String(v["public-url"]) : undefined, maxPayloadBytes: Number(v["max-payload-size"]), durability: v.durability as Durability });
  } catch (e) {
    process.stderr.write(`coreos update-engine serve: ${(e as Error).message}\n`);
    return 1;
  }
  if (srv.firstToken) {
    if (v["token-file"]) writeFileSync(String(v["token-file"]), `${srv.firstToken}\n`, { mode: 0o600 });
    process.stdout.write(`admin token (shown once, store it now): ${srv.firstToken}\n`);
    l.info(`first start: created the admin token (printed once on stdout${v["token-file"] ? `, written to ${v["token-file"]}` : ""}; only its hash is stored)`);
  }
  let http;
  try {
    http = Bun.serve({
      hostname: addr.hostname,
      port: addr.port,
      maxRequestBodySize: Number(v["max-payload-size"]) + 1024 * 1024,
      idleTimeout: 60,
      fetch: (req, server) => srv.fetch(req, server.requestIP(req)?.address ?? ""),
    });
  } catch (e) {
    await srv.close();
    process.stderr.write(`coreos update-engine serve: cannot listen on ${v.listen}: ${(e as Error).message}\n`);
    return 1;
  }
  l.info(`serving Omaha on http://${addr.hostname}:${http.port}/v1/update/, dashboard on /dashboard, data in ${v["data-dir"]}`);
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  await http.stop(true);
  await srv.close();
  l.info("stopped");
  return 0;
}

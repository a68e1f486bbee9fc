// The processing flow of §6.1: pick a datasource, fetch and gunzip the user-data, validate it,
// fetch metadata, substitute, tell what kind of user-data it is, apply, run a script. Returns the
// exit code; `ignoreFailure` turns a failure into 0 as coreos-cloudinit's --ignore-failure does.
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomInt } from "node:crypto";
import { gunzipSync } from "node:zlib";
import type { ConsolaInstance } from "consola";
import type { UnitManager } from "../systemd/manager.ts";
import { applyCloudConfig, ApplyError } from "./apply.ts";
import { ConfigError, readConfig, type Unit } from "./config.ts";
import { selectDatasource, type Datasource } from "./datasource.ts";
import { substitute, substitutions, type Metadata } from "./environment.ts";
import { inRoot } from "./files.ts";
import { debianNetworkUnits, packetNetworkUnits, vmwareNetworkUnits } from "./netconf.ts";
import { classify, formatEntry, validate, type Entry } from "./validate.ts";

export interface RunOptions {
  sources: Datasource[];
  budgetMs: number;
  validateOnly: boolean;
  json: boolean;
  ignoreFailure: boolean;
  /** "/" for the running host. */
  root: string;
  /** Nothing runs in the root (an image being built): script user-data is saved, not run. */
  offline: boolean;
  /** --convert-netconf: the metadata's network configuration becomes networkd units. */
  convertNetconf: "" | "debian" | "vmware" | "packet";
  workspace: string;
  sshKeyName: string;
  manager: () => UnitManager;
  env: Record<string, string | undefined>;
  log: ConsolaInstance;
  out: (s: string) => void;
}

/** User-data that starts with the gzip magic is gunzipped first. */
export function gunzipIfGzip(b: Uint8Array): Uint8Array {
  return b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b ? gunzipSync(b) : b;
}

export function printEntries(entries: Entry[], json: boolean, out: (s: string) => void): void {
  if (json) out(`${JSON.stringify({ result: entries.map((e) => ({ kind: e.kind, message: e.message, line: e.line })) })}\n`);
  else for (const e of entries) out(`${formatEntry(e)}\n`);
}

const METADATA_ONLY = "#cloud-config\n";

/**
 * Script user-data: saved as <workspace>/scripts/<random> (0744) and run once through the unit
 * manager as coreos-cloudinit-<file>.service; the unit's name is kept in scripts/unit-name. An
 * offline root has nothing to run it, so there it is only saved.
 */
async function runScript(script: string, o: RunOptions): Promise<void> {
  const dir = join(inRoot(o.root, o.workspace), "scripts");
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const file = String(randomInt(100_000_000, 999_999_999));
  const path = join(dir, file);
  writeFileSync(path, script, { mode: 0o744, flag: "wx" });
  chmodSync(path, 0o744);
  if (o.offline) {
    o.log.warn(`Saved script user-data as ${path}; not run: ${o.root} is an offline root`);
    return;
  }
  const unit = `coreos-cloudinit-${file}.service`;
  const m = o.manager();
  const content = `[Unit]\nDescription=Unit generated and executed by coreos-cloudinit on behalf of user\n\n[Service]\nType=oneshot\nExecStart=/bin/bash ${path}\n`;
  o.log.info(`Creating transient unit '${unit}'`);
  await m.writeUnit(unit, content, { runtime: true });
  await m.daemonReload();
  await m.run("start", unit);
  writeFileSync(join(dir, "unit-name"), unit);
}

export async function runCloudinit(o: RunOptions): Promise<number> {
  const { log } = o;
  const ds = await selectDatasource(o.sources, o.budgetMs);
  if (!ds) {
    log.error("No datasources available in time");
    return 1;
  }
  let failure = false;
  let raw: Uint8Array = new Uint8Array();
  try {
    log.info(`Fetching user-data from datasource of type "${ds.type}"`);
    raw = await ds.fetchUserdata();
  } catch (e) {
    log.error(`Failed fetching user-data from datasource: ${(e as Error).message}. Continuing...`);
    failure = true;
  }
  let userdata = "";
  try {
    userdata = new TextDecoder().decode(gunzipIfGzip(raw));
  } catch (e) {
    log.error(`Failed decompressing user-data from datasource: ${(e as Error).message}. Continuing...`);
    failure = true;
  }

  if (o.validateOnly) {
    const entries = validate(userdata);
    printEntries(entries, o.json, o.out);
    return entries.length > 0 ? 1 : 0;
  }

  let metadata: Metadata;
  try {
    log.info(`Fetching meta-data from datasource of type "${ds.type}"`);
    metadata = await ds.fetchMetadata();
  } catch (e) {
    log.error(`Failed fetching meta-data from datasource: ${(e as Error).message}`);
    return 1;
  }
  let networkUnits: Unit[] = [];
  if (o.convertNetconf !== "") {
    const net = metadata.network;
    try {
      if (net?.format !== o.convertNetconf) log.warn(`The datasource "${ds.type}" has no ${o.convertNetconf} network config to convert`);
      else {
        networkUnits = net.format === "debian" ? debianNetworkUnits(net.text) : net.format === "vmware" ? vmwareNetworkUnits(net.values) : packetNetworkUnits(net.data);
        log.info(`Converted the network config into ${networkUnits.length} networkd units`);
      }
    } catch (e) {
      log.error(`Failed to setup network units: ${(e as Error).message}`);
      return 1;
    }
  }
  const subs = substitutions(metadata, o.env);
  const text = substitute(userdata, subs);

  let config = METADATA_ONLY;
  let script: string | undefined;
  switch (classify(text)) {
    case "ignition":
      log.info("Detected an Ignition config. Exiting...");
      return 0;
    case "empty":
      log.info("User-data is empty");
      break;
    case "script":
      script = text;
      break;
    case "unknown":
      log.error("Unrecognized user-data format");
      failure = true;
      break;
    case "cloud-config": {
      // The substituted text is what gets applied, so that is what is validated: a value brought
      // in by a substitution cannot slip past the validator. Line numbers are the same.
      const entries = validate(text);
      for (const e of entries) if (e.kind !== "error") log.warn(formatEntry(e));
      const errors = entries.filter((e) => e.kind === "error");
      if (errors.length > 0) {
        log.error(`cloud-config not applied, nothing was changed: ${errors.map(formatEntry).join("; ")}`);
        return o.ignoreFailure ? 0 : 1;
      }
      config = text;
    }
  }

  try {
    const cc = readConfig(config);
    await applyCloudConfig(cc, { root: o.root, sshKeyName: o.sshKeyName, metadata, subs, manager: o.manager(), log, networkUnits });
    if (script !== undefined) await runScript(script, o);
  } catch (e) {
    if (e instanceof ConfigError || e instanceof ApplyError) log.error(`cloud-config not applied, nothing was changed: ${e.message}`);
    else log.error(`Failed to apply cloud-config: ${(e as Error).message}`);
    failure = true;
  }
  return failure && !o.ignoreFailure ? 1 : 0;
}

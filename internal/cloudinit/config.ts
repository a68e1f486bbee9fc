// The cloud-config as the apply steps use it: decoded from the tree with Go's yaml v1 rules
// (any scalar into a string field as written, an int into a float, null into the zero value,
// `-` and `_` alike in keys, a later duplicate key over an earlier one) and refusing what that
// decoder refuses (a list where a string goes, a word where a number goes), with the line.
import type { UnitCommand } from "../systemd/manager.ts";
import { decodeContent, DecodeError } from "./encoding.ts";
import { SCHEMA, section, type Field, type StructField } from "./schema.ts";
import { child, parseTree, type CNode } from "./tree.ts";

export interface WriteFile {
  path: string;
  content: Uint8Array;
  /** 0644 unless `permissions` says otherwise. */
  mode: number;
  owner: string;
  line: number;
}

export interface User {
  name: string;
  passwd: string;
  sshAuthorizedKeys: string[];
  sshImportGithub: string;
  sshImportGithubUsers: string[];
  sshImportUrl: string;
  gecos: string;
  homedir: string;
  noCreateHome: boolean;
  primaryGroup: string;
  groups: string[];
  noUserGroup: boolean;
  system: boolean;
  noLogInit: boolean;
  shell: string;
}

export interface DropIn {
  name: string;
  content: string;
}

export interface Unit {
  name: string;
  content: string;
  runtime: boolean;
  enable: boolean;
  mask: boolean;
  command: UnitCommand | "";
  dropIns: DropIn[];
}

/** `KEY=value` pairs of one section, non-zero fields only, in the struct's field order. */
export type EnvVars = Array<[string, string]>;

export interface CloudConfig {
  hostname: string;
  sshAuthorizedKeys: string[];
  users: User[];
  writeFiles: WriteFile[];
  manageEtcHosts: string;
  coreos: {
    etcd: EnvVars;
    etcd2: EnvVars;
    fleet: EnvVars;
    locksmith: EnvVars;
    flannel: EnvVars;
    update: EnvVars;
    oem: { id: string; name: string; versionId: string; homeUrl: string; bugReportUrl: string };
    units: Unit[];
  };
}

export class ConfigError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(message);
  }
}

type GoValue = string | number | boolean | GoValue[] | { [k: string]: GoValue };

const TAG: Record<string, string> = { string: "!!str", int: "!!int", float64: "!!float", bool: "!!bool", map: "!!map", slice: "!!seq" };

function mismatch(n: CNode, f: Field): ConfigError {
  const what = n.kind === "map" || n.kind === "slice" ? TAG[n.kind] : `${TAG[n.kind]} \`${n.text}\``;
  const into = f.kind === "struct" ? "struct" : f.kind === "slice" ? "slice" : f.kind === "float64" ? "float64" : f.kind;
  return new ConfigError(n.line, `line ${n.line}: cannot unmarshal ${what} into ${into}`);
}

function zero(f: Field): GoValue {
  switch (f.kind) {
    case "string":
      return "";
    case "int":
    case "float64":
      return 0;
    case "bool":
      return false;
    case "slice":
      return [];
    case "struct":
      return Object.fromEntries(Object.entries(f.fields).map(([k, v]) => [k, zero(v)]));
  }
}

/** Go's yaml v1 decode of one node into a field of the given type. */
function decode(n: CNode | undefined, f: Field): GoValue {
  if (!n || n.kind === "null") return zero(f);
  switch (f.kind) {
    case "string":
      if (n.kind === "map" || n.kind === "slice") throw mismatch(n, f);
      return n.text;
    case "int":
      if (n.kind === "int" || n.kind === "float64") return Math.trunc(n.num ?? 0);
      throw mismatch(n, f);
    case "float64":
      if (n.kind === "int" || n.kind === "float64") return n.num ?? 0;
      throw mismatch(n, f);
    case "bool":
      if (n.kind === "bool") return /^(y|Y|yes|Yes|YES|true|True|TRUE|on|On|ON)$/.test(n.text);
      throw mismatch(n, f);
    case "slice":
      if (n.kind !== "slice") throw mismatch(n, f);
      return n.children.map((c) => decode(c, f.elem));
    case "struct": {
      if (n.kind !== "map") throw mismatch(n, f);
      const out: { [k: string]: GoValue } = {};
      for (const [k, cf] of Object.entries(f.fields)) out[k] = decode(n.children.findLast((c) => c.name === k), cf);
      return out;
    }
  }
}

/** Go's %v of a float64 (%g, shortest digits): exponent form below 1e-4 and from 1e6 on. */
export function goFloat(x: number): string {
  if (!Number.isFinite(x)) return x > 0 ? "+Inf" : x < 0 ? "-Inf" : "NaN";
  const [mant, expText] = x.toExponential().split("e") as [string, string];
  const exp = Number(expText);
  if (exp < -4 || exp >= 6) return `${mant}e${exp < 0 ? "-" : "+"}${String(Math.abs(exp)).padStart(2, "0")}`;
  return String(x);
}

function envVars(values: { [k: string]: GoValue }, f: StructField): EnvVars {
  const out: EnvVars = [];
  for (const [k, cf] of Object.entries(f.fields)) {
    if (!("env" in cf) || !cf.env) continue;
    const v = values[k];
    if (v === "" || v === 0 || v === false || v === undefined) continue;
    out.push([cf.env, typeof v === "number" && cf.kind === "float64" ? goFloat(v) : String(v)]);
  }
  return out;
}

type Obj = { [k: string]: GoValue };

/**
 * Decodes a cloud-config's text. Throws ConfigError for YAML that does not parse, values the Go
 * decoder would refuse, and write_files content that does not decode, so that nothing is applied
 * from a config that would fail halfway.
 */
export function readConfig(text: string): CloudConfig {
  const parsed = parseTree(text);
  if (!parsed.ok) throw new ConfigError(parsed.error.line, `line ${parsed.error.line}: ${parsed.error.message}`);
  const root = parsed.root;
  const cc = decode(root, SCHEMA) as Obj;
  const coreos = cc.coreos as Obj;
  const fileNodes = child(root, "write_files")?.children ?? [];
  const writeFiles = (cc.write_files as Obj[]).map((f, i): WriteFile => {
    const node = fileNodes[i]!;
    const contentNode = node.children.findLast((c) => c.name === "content");
    const raw = contentNode?.bytes ?? new TextEncoder().encode(String(f.content));
    let content: Uint8Array;
    try {
      content = decodeContent(raw, String(f.encoding));
    } catch (e) {
      if (!(e instanceof DecodeError)) throw e;
      const line = contentNode?.line ?? node.line;
      throw new ConfigError(line, `line ${line}: content of ${String(f.path)} cannot be decoded as "${String(f.encoding)}": ${e.message}`);
    }
    const perm = String(f.permissions);
    if (perm !== "" && !/^0?[0-7]{3,4}$/.test(perm)) throw new ConfigError(node.line, `line ${node.line}: invalid permissions ${perm} for ${String(f.path)}`);
    return { path: String(f.path), content, mode: perm === "" ? 0o644 : parseInt(perm, 8), owner: String(f.owner), line: node.line };
  });
  const users = (cc.users as Obj[]).map(
    (u): User => ({
      name: String(u.name),
      passwd: String(u.passwd),
      sshAuthorizedKeys: u.ssh_authorized_keys as string[],
      sshImportGithub: String(u.coreos_ssh_import_github),
      sshImportGithubUsers: u.coreos_ssh_import_github_users as string[],
      sshImportUrl: String(u.coreos_ssh_import_url),
      gecos: String(u.gecos),
      homedir: String(u.homedir),
      noCreateHome: u.no_create_home === true,
      primaryGroup: String(u.primary_group),
      groups: u.groups as string[],
      noUserGroup: u.no_user_group === true,
      system: u.system === true,
      noLogInit: u.no_log_init === true,
      shell: String(u.shell),
    }),
  );
  const unitNodes = child(child(root, "coreos"), "units")?.children ?? [];
  const units = (coreos.units as Obj[]).map((u, i): Unit => {
    const command = String(u.command);
    if (command !== "" && !/^(start|stop|restart|reload|try-restart|reload-or-restart|reload-or-try-restart)$/.test(command)) {
      const line = unitNodes[i]?.line ?? 1;
      throw new ConfigError(line, `line ${line}: unsupported command "${command}" for unit ${String(u.name)}`);
    }
    return {
      name: String(u.name),
      content: String(u.content),
      runtime: u.runtime === true,
      enable: u.enable === true,
      mask: u.mask === true,
      command: command as UnitCommand | "",
      dropIns: (u.drop_ins as Obj[]).map((d) => ({ name: String(d.name), content: String(d.content) })),
    };
  });
  const oem = coreos.oem as Obj;
  return {
    hostname: String(cc.hostname),
    sshAuthorizedKeys: cc.ssh_authorized_keys as string[],
    users,
    writeFiles,
    manageEtcHosts: String(cc.manage_etc_hosts),
    coreos: {
      etcd: envVars(coreos.etcd as Obj, section("etcd")),
      etcd2: envVars(coreos.etcd2 as Obj, section("etcd2")),
      fleet: envVars(coreos.fleet as Obj, section("fleet")),
      locksmith: envVars(coreos.locksmith as Obj, section("locksmith")),
      flannel: envVars(coreos.flannel as Obj, section("flannel")),
      update: envVars(coreos.update as Obj, section("update")),
      oem: { id: String(oem.id), name: String(oem.name), versionId: String(oem.version_id), homeUrl: String(oem.home_url), bugReportUrl: String(oem.bug_report_url) },
      units,
    },
  };
}

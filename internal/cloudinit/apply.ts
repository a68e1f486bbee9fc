// Applying a decoded cloud-config to a root (initialize.Apply): hostname, users, SSH keys, files,
// /etc/environment, units. Everything that can be checked is checked first (preflight), so a
// config that would fail halfway fails before the first write.
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { hostname as osHostname } from "node:os";
import { join, posix } from "node:path";
import type { ConsolaInstance } from "consola";
import type { UnitCommand, UnitManager } from "../systemd/manager.ts";
import { parseUnitName } from "../systemd/names.ts";
import { Accounts, createUser, resolveOwner, setPassword } from "./accounts.ts";
import type { CloudConfig, EnvVars, Unit, User } from "./config.ts";
import { environmentVars, mergeEnvContents, type Metadata, type Substitutions } from "./environment.ts";
import { inRoot, writeFileAtomic } from "./files.ts";
import { dropInContents, etcHosts, flannelOptions, oemRelease, shortHostname, updateConf } from "./generated.ts";
import { getRetry } from "./http.ts";
import { underUsr } from "./validate.ts";

export interface ApplyOptions {
  /** "/" for the running host, else an offline tree. */
  root: string;
  sshKeyName: string;
  metadata: Metadata;
  subs: Substitutions;
  manager: UnitManager;
  log: ConsolaInstance;
  /** networkd units from --convert-netconf, processed after every other unit. */
  networkUnits?: Unit[];
}

/** A config that cannot be applied, found before anything was written. */
export class ApplyError extends Error {}

const NETWORK = new Set(["network", "netdev", "link"]);

function isNetworkUnit(name: string): boolean {
  return NETWORK.has(posix.extname(name).slice(1));
}

/** The hostname to set: cloud-config's, else the metadata's; first label, 63 bytes at most. */
export function chooseHostname(cc: CloudConfig, md: Metadata, log: ConsolaInstance): string {
  if (cc.hostname !== "" && md.hostname !== "" && cc.hostname !== md.hostname) {
    log.warn(`Both the user-data and the meta-data set a hostname; using "${cc.hostname}" from the user-data`);
  }
  const name = cc.hostname || md.hostname;
  const short = shortHostname(name);
  if (short !== name) log.info(`Hostname ${name} shortened to ${short}`);
  return short;
}

/** Metadata keys (sorted by name) then the cloud-config's, as FindSSHKeys appends them. */
export function coreKeys(cc: CloudConfig, md: Metadata): string[] {
  const fromMetadata = Object.keys(md.sshPublicKeys)
    .sort()
    .map((k) => md.sshPublicKeys[k]!);
  return [...fromMetadata, ...cc.sshAuthorizedKeys];
}

/** Built-in units of §6.5, appended after the user's units. */
export function builtinUnits(cc: CloudConfig): Unit[] {
  const out: Unit[] = [];
  const dropIn = (name: string, vars: EnvVars) => {
    const content = dropInContents(vars);
    if (content !== "") out.push({ name, content: "", runtime: true, enable: false, mask: false, command: "", dropIns: [{ name: "20-cloudinit.conf", content }] });
  };
  dropIn("etcd.service", cc.coreos.etcd);
  dropIn("etcd2.service", cc.coreos.etcd2);
  dropIn("fleet.service", cc.coreos.fleet);
  dropIn("locksmithd.service", cc.coreos.locksmith);
  const update = Object.fromEntries(cc.coreos.update);
  if (update.REBOOT_STRATEGY !== undefined) {
    const off = update.REBOOT_STRATEGY === "off";
    out.push({ name: "locksmithd.service", content: "", runtime: true, enable: false, mask: off, command: off ? "stop" : "restart", dropIns: [] });
  }
  if (update.GROUP !== undefined || update.SERVER !== undefined) {
    out.push({ name: "update-engine.service", content: "", runtime: false, enable: false, mask: false, command: "restart", dropIns: [] });
  }
  return out;
}

interface PlannedFile {
  path: string;
  content: Uint8Array | string;
  mode: number;
  owner: string;
}

/** Every file of §6.4-6.5 that cloud-config writes, in coreos-cloudinit's order. */
function plannedFiles(cc: CloudConfig, root: string, hostname: string): PlannedFile[] {
  const files: PlannedFile[] = cc.writeFiles.map((f) => ({ path: f.path, content: f.content, mode: f.mode, owner: f.owner }));
  if (cc.coreos.oem.id !== "") files.push({ path: "/etc/oem-release", content: oemRelease(cc.coreos.oem), mode: 0o644, owner: "" });
  if (cc.coreos.update.length > 0) {
    const current = [inRoot(root, "/etc/coreos/update.conf"), inRoot(root, "/usr/share/coreos/update.conf")].find((p) => existsSync(p));
    files.push({ path: "/etc/coreos/update.conf", content: updateConf(current ? readFileSync(current, "utf8") : "", cc.coreos.update), mode: 0o644, owner: "" });
  }
  if (cc.manageEtcHosts !== "") files.push({ path: "/etc/hosts", content: etcHosts(hostname), mode: 0o644, owner: "" });
  if (cc.coreos.flannel.length > 0) files.push({ path: "/run/flannel/options.env", content: flannelOptions(cc.coreos.flannel), mode: 0o644, owner: "" });
  return files;
}

/** The host's current name, or the root's /etc/hostname for an offline tree. */
function currentHostname(root: string): string {
  if (root === "/") return osHostname();
  try {
    return readFileSync(inRoot(root, "/etc/hostname"), "utf8").trim() || "localhost";
  } catch {
    return "localhost";
  }
}

function preflight(cc: CloudConfig, o: ApplyOptions, keys: string[]): void {
  const acc = new Accounts(o.root);
  const fail = (m: string) => {
    throw new ApplyError(m);
  };
  if (cc.manageEtcHosts !== "" && cc.manageEtcHosts !== "localhost") fail(`Invalid option to manage_etc_hosts: "${cc.manageEtcHosts}" (only "localhost" is supported)`);
  const newUsers = cc.users.filter((u) => u.name !== "" && !acc.user(u.name)).map((u) => u.name);
  const userKnown = (n: string) => /^[0-9]+$/.test(n) || acc.user(n) !== undefined || newUsers.includes(n);
  // useradd makes a group named after each new user (USERGROUPS_ENAB), which later entries may use.
  const groupKnown = (n: string, before: string[]) => /^[0-9]+$/.test(n) || acc.group(n) !== undefined || before.includes(n);
  cc.users.forEach((u, i) => {
    if (u.name === "" || acc.user(u.name)) return;
    const before = newUsers.slice(0, newUsers.indexOf(u.name));
    for (const g of [...u.groups, ...(u.primaryGroup ? [u.primaryGroup] : [])]) {
      if (!groupKnown(g, before)) fail(`users[${i}] (${u.name}): group "${g}" does not exist in ${inRoot(o.root, "/etc/group")}`);
    }
  });
  if (keys.length > 0 && !userKnown("core")) fail(`cannot authorize SSH keys: user "core" does not exist in ${inRoot(o.root, "/etc/passwd")}`);
  for (const f of cc.writeFiles) {
    if (f.path === "") fail(`write_files entry at line ${f.line} has no path`);
    if (underUsr(f.path)) fail(`${f.path}: file cannot be written to a read-only filesystem`);
    if (f.owner !== "") {
      const [user = "", group] = f.owner.split(":", 2);
      if (user !== "" && !userKnown(user)) fail(`${f.path}: owner "${f.owner}": user "${user}" does not exist`);
      if (group && !groupKnown(group, newUsers)) fail(`${f.path}: owner "${f.owner}": group "${group}" does not exist`);
    }
  }
  for (const u of [...cc.coreos.units, ...builtinUnits(cc)]) {
    if (u.name === "") continue;
    try {
      parseUnitName(u.name);
    } catch (e) {
      fail(`unit "${u.name}": ${(e as Error).message}`);
    }
    for (const d of u.dropIns) {
      if (d.name !== "" && (!d.name.endsWith(".conf") || d.name.includes("/"))) fail(`unit ${u.name}: drop-in "${d.name}" must be a file name ending in .conf`);
    }
  }
}

export function setHostname(root: string, name: string, log: ConsolaInstance): void {
  writeFileAtomic(inRoot(root, "/etc/hostname"), `${name}\n`);
  if (root !== "/") return;
  // A running host also gets the new name now, through systemd when it runs, else sethostname(2).
  const argv = existsSync("/run/systemd/system") ? ["hostnamectl", "set-hostname", name] : ["hostname", name];
  const r = Bun.spawnSync(argv, { stdout: "ignore", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr.toString().trim() || `exit status ${r.exitCode}`}`);
  log.info(`Set hostname to ${name}`);
}

/**
 * update-ssh-keys -u USER -a NAME: the keys go to ~/.ssh/authorized_keys.d/NAME, and
 * authorized_keys is regenerated from every file there (sorted), all 0600 and owned by the user.
 */
export function authorizeKeys(root: string, user: string, name: string, keys: string[]): void {
  const u = new Accounts(root).user(user);
  if (!u) throw new Error(`cannot authorize SSH keys: user "${user}" does not exist`);
  const owner = { uid: u.uid, gid: u.gid };
  const home = inRoot(root, u.home);
  if (!existsSync(home)) {
    // A user made with no_create_home still gets a home to hold its keys, owned by it.
    mkdirSync(home, { recursive: true, mode: 0o755 });
    chownSync(home, owner.uid, owner.gid);
  }
  const sshDir = join(home, ".ssh");
  const keysDir = join(sshDir, "authorized_keys.d");
  for (const d of [sshDir, keysDir]) {
    mkdirSync(d, { recursive: true, mode: 0o700 });
    chmodSync(d, 0o700);
    chownSync(d, owner.uid, owner.gid);
  }
  const text = keys.map((k) => k.trim()).filter((k) => k !== "").map((k) => `${k}\n`).join("");
  writeFileAtomic(join(keysDir, name), text, 0o600, owner);
  const all = readdirSync(keysDir)
    .filter((f) => !f.startsWith(".") && !f.startsWith("cloudinit-temp"))
    .sort()
    .map((f) => readFileSync(join(keysDir, f), "utf8"))
    .map((t) => (t === "" || t.endsWith("\n") ? t : `${t}\n`))
    .join("");
  writeFileAtomic(join(sshDir, "authorized_keys"), `# auto-generated by update-ssh-keys\n${all}`, 0o600, owner);
}

async function fetchUserKeys(url: string): Promise<string[]> {
  const body = await getRetry(url);
  const parsed = JSON.parse(new TextDecoder().decode(body)) as unknown;
  if (!Array.isArray(parsed)) throw new Error(`${url}: expected a JSON list of keys`);
  return parsed.map((k) => (typeof k === "object" && k !== null && typeof (k as { key?: unknown }).key === "string" ? (k as { key: string }).key : "")).filter((k) => k !== "");
}

async function applyUser(u: User, o: ApplyOptions): Promise<void> {
  const acc = new Accounts(o.root);
  if (acc.user(u.name)) {
    o.log.info(`User '${u.name}' exists, ignoring creation-time fields`);
    if (u.passwd !== "" && acc.shadowHash(u.name) !== u.passwd) {
      o.log.info(`Setting '${u.name}' user's password`);
      setPassword(u.name, u.passwd, o.root);
    }
  } else {
    o.log.info(`Creating user '${u.name}'`);
    createUser(u, o.root);
  }
  if (u.sshAuthorizedKeys.length > 0) {
    o.log.info(`Authorizing ${u.sshAuthorizedKeys.length} SSH keys for user '${u.name}'`);
    authorizeKeys(o.root, u.name, o.sshKeyName, u.sshAuthorizedKeys);
  }
  for (const gh of [u.sshImportGithub, ...u.sshImportGithubUsers].filter((g) => g !== "")) {
    o.log.info(`Authorizing github user ${gh} SSH keys for CoreOS user '${u.name}'`);
    authorizeKeys(o.root, u.name, `github-${gh}`, await fetchUserKeys(`https://api.github.com/users/${gh}/keys`));
  }
  if (u.sshImportUrl !== "") {
    o.log.info(`Authorizing SSH keys for CoreOS user '${u.name}' from '${u.sshImportUrl}'`);
    authorizeKeys(o.root, u.name, `coreos-cloudinit-${u.name}`, await fetchUserKeys(u.sshImportUrl));
  }
}

/**
 * processUnits: files, drop-ins and masks in list order; then the enables, one systemctl run per
 * placement (a run costs tens of milliseconds, as much as everything else a unit needs); one
 * daemon-reload if anything was written; then the commands.
 */
export async function processUnits(units: Unit[], m: UnitManager, log: ConsolaInstance): Promise<void> {
  const actions: { command: UnitCommand; name: string }[] = [];
  const enables = { persistent: [] as string[], runtime: [] as string[] };
  let reload = false;
  let restartNetworkd = false;
  for (const u of units) {
    if (u.name === "") {
      log.info("Skipping unit without name");
      continue;
    }
    const where = { runtime: u.runtime };
    if (u.content !== "") {
      await m.writeUnit(u.name, u.content, where);
      log.info(`Wrote unit "${u.name}"`);
      reload = true;
    }
    for (const d of u.dropIns) {
      if (d.name === "" || d.content === "") continue;
      await m.writeDropIn(u.name, d.name, d.content, where);
      log.info(`Wrote drop-in unit "${d.name}" of "${u.name}"`);
      reload = true;
    }
    if (u.mask) {
      log.info(`Masking unit file "${u.name}"`);
      await m.mask(u.name, where);
    } else if (u.runtime) {
      await m.unmask(u.name, where);
    }
    const network = isNetworkUnit(u.name);
    if (u.enable) {
      if (network) log.info(`Skipping enable for network-like unit "${u.name}"`);
      else enables[u.runtime ? "runtime" : "persistent"].push(u.name);
    }
    if (network) restartNetworkd = true;
    else if (u.command !== "") actions.push({ command: u.command, name: u.name });
  }
  for (const [names, runtime] of [[enables.persistent, false], [enables.runtime, true]] as const) {
    await m.enable(names, { runtime });
    for (const name of names) log.info(`Enabled unit "${name}"`);
  }
  if (reload) await m.daemonReload();
  if (restartNetworkd) await m.run("restart", "systemd-networkd.service");
  for (const a of actions) {
    log.info(`Calling unit command "${a.command}" on "${a.name}"`);
    await m.run(a.command, a.name);
  }
}

export async function applyCloudConfig(cc: CloudConfig, o: ApplyOptions): Promise<void> {
  const hostname = chooseHostname(cc, o.metadata, o.log);
  const keys = coreKeys(cc, o.metadata);
  preflight(cc, o, keys);

  if (hostname !== "") setHostname(o.root, hostname, o.log);
  for (const u of cc.users) {
    if (u.name === "") {
      o.log.info("User object has no 'name' field, skipping");
      continue;
    }
    await applyUser(u, o);
  }
  if (keys.length > 0) {
    authorizeKeys(o.root, "core", o.sshKeyName, keys);
    o.log.info("Authorized SSH keys for core user");
  }

  const acc = new Accounts(o.root);
  let wroteEnvironment = false;
  for (const f of plannedFiles(cc, o.root, currentHostname(o.root))) {
    const full = inRoot(o.root, f.path);
    writeFileAtomic(full, f.content, f.mode, f.owner === "" ? undefined : resolveOwner(acc, f.owner));
    if (posix.normalize(`/${f.path}`) === "/etc/environment") wroteEnvironment = true;
    o.log.info(`Wrote file ${full} to filesystem`);
  }
  const vars = environmentVars(o.subs);
  if (!wroteEnvironment && Object.keys(vars).length > 0) {
    const path = inRoot(o.root, "/etc/environment");
    const old = existsSync(path) ? readFileSync(path, "utf8") : "";
    const merged = mergeEnvContents(old, vars);
    if (merged !== old) {
      writeFileAtomic(path, merged);
      o.log.info("Updated /etc/environment");
    }
  }
  await processUnits([...cc.coreos.units, ...builtinUnits(cc), ...(o.networkUnits ?? [])], o.manager, o.log);
}

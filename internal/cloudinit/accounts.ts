// Users and groups of the target root: read from its /etc/passwd, /etc/group and /etc/shadow (not
// the host's NSS, which knows nothing of an image being built), changed only through the real
// shadow tools (`useradd`, `chpasswd`) with `--root` so they edit that root's files.
import { readFileSync } from "node:fs";
import type { User } from "./config.ts";
import { inRoot, type Owner } from "./files.ts";

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

function lines(root: string, file: string): string[][] {
  try {
    return readFileSync(inRoot(root, file), "utf8")
      .split("\n")
      .filter((l) => l !== "" && !l.startsWith("#"))
      .map((l) => l.split(":"));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw e;
  }
}

export class Accounts {
  constructor(readonly root: string) {}

  user(name: string): PasswdEntry | undefined {
    const f = lines(this.root, "/etc/passwd").find((l) => l[0] === name);
    return f ? { name, uid: Number(f[2]), gid: Number(f[3]), home: f[5] ?? "" } : undefined;
  }

  group(name: string): number | undefined {
    const f = lines(this.root, "/etc/group").find((l) => l[0] === name);
    return f ? Number(f[2]) : undefined;
  }

  /** The crypt hash in /etc/shadow, to leave an unchanged password alone. */
  shadowHash(name: string): string | undefined {
    return lines(this.root, "/etc/shadow").find((l) => l[0] === name)?.[1];
  }
}

export class OwnerError extends Error {}

/**
 * chown(1)'s OWNER[:GROUP] against the root's accounts: `user` keeps the group, `user:` takes the
 * user's login group, `:group` keeps the user, numbers are ids.
 */
export function resolveOwner(acc: Accounts, spec: string): Owner {
  const colon = spec.indexOf(":");
  const userPart = colon === -1 ? spec : spec.slice(0, colon);
  const groupPart = colon === -1 ? undefined : spec.slice(colon + 1);
  let uid = -1;
  let gid = -1;
  if (userPart !== "") {
    const u = acc.user(userPart);
    if (u) uid = u.uid;
    else if (/^[0-9]+$/.test(userPart)) uid = Number(userPart);
    else throw new OwnerError(`invalid user: "${spec}"`);
    if (groupPart === "") gid = u?.gid ?? -1;
  }
  if (groupPart !== undefined && groupPart !== "") {
    const g = acc.group(groupPart);
    if (g !== undefined) gid = g;
    else if (/^[0-9]+$/.test(groupPart)) gid = Number(groupPart);
    else throw new OwnerError(`invalid group: "${spec}"`);
  }
  return { uid, gid };
}

/** useradd's arguments for a new user, in coreos-cloudinit's order. */
export function useraddArgs(u: User, root: string): string[] {
  const a = root === "/" ? [] : ["--root", root];
  a.push("--password", u.passwd !== "" ? u.passwd : "*");
  if (u.gecos !== "") a.push("--comment", u.gecos);
  if (u.homedir !== "") a.push("--home-dir", u.homedir);
  a.push(u.noCreateHome ? "--no-create-home" : "--create-home");
  if (u.primaryGroup !== "") a.push("--gid", u.primaryGroup);
  if (u.groups.length > 0) a.push("--groups", u.groups.join(","));
  if (u.noUserGroup) a.push("--no-user-group");
  if (u.system) a.push("--system");
  if (u.noLogInit) a.push("--no-log-init");
  if (u.shell !== "") a.push("--shell", u.shell);
  a.push(u.name);
  return a;
}

export class CommandError extends Error {}

function run(argv: string[], stdin?: string): void {
  const r = Bun.spawnSync(argv, { stdin: stdin === undefined ? "ignore" : Buffer.from(stdin), stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) {
    const why = (r.stderr.toString().trim().split("\n").pop() ?? "") || `exit status ${r.exitCode}`;
    throw new CommandError(`${argv[0]} failed: ${why}`);
  }
}

export function createUser(u: User, root: string): void {
  run(["useradd", ...useraddArgs(u, root)]);
}

export function setPassword(name: string, hash: string, root: string): void {
  run(["chpasswd", "-e", ...(root === "/" ? [] : ["--root", root])], `${name}:${hash}\n`);
}

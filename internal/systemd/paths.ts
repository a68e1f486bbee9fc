// Where unit files live and how a unit is assembled from them, under an optional root: the search
// path in precedence order, masking, templates, drop-ins; plus the file operations both back ends
// share (atomic writes, mask/unmask) and `systemctl enable`'s [Install] handling for hosts
// without systemctl.
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync, type Stats } from "node:fs";
import { basename, dirname, join } from "node:path";
import { randomBytes } from "node:crypto";
import { isInstance, isTemplate, parseUnitName, templateOf, expandSpecifiers, type SpecifierContext } from "./names.ts";
import { getValue, getWords, mergeUnits, parseUnit, UnitFileError, type ParseProblem, type UnitFile } from "./unitfile.ts";
import type { Placement } from "./manager.ts";

/** The system unit search path, highest precedence first (systemd.unit(5), trimmed to the usual). */
export const SYSTEM_UNIT_DIRS = ["/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system", "/usr/lib/systemd/system"];
const NETWORK_TYPES = new Set(["network", "netdev", "link"]);

/** Joins an absolute path inside a root ("/" or "" means the host itself). */
export function under(root: string, path: string): string {
  return root === "" || root === "/" ? path : join(root, path);
}

/** Where a unit written by cloud-config goes: /etc or /run, `systemd/network` for networkd files. */
export function placementDir(name: string, where: Placement): string {
  const type = parseUnitName(name).type;
  const sub = NETWORK_TYPES.has(type) ? "network" : "system";
  return `/${where.runtime ? "run" : "etc"}/systemd/${sub}`;
}

/** Writes a file through a temp file in the same directory and a rename, so readers never see half. */
export function writeAtomic(path: string, content: string | Uint8Array, mode = 0o644): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
  try {
    writeFileSync(tmp, content, { mode });
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

function lstatOrNull(p: string): Stats | null {
  try {
    return lstatSync(p);
  } catch {
    return null;
  }
}

/** Follows symlinks inside the root (an absolute target is relative to the root, not the host). */
function resolveInRoot(root: string, hostPath: string): { path: string; masked: boolean } | null {
  let p = hostPath;
  for (let hops = 0; hops < 32; hops++) {
    const st = lstatOrNull(p);
    if (!st) return null;
    // systemd's null_or_empty(): a character device or an empty file masks, like a /dev/null link.
    if (!st.isSymbolicLink()) return { path: p, masked: st.isCharacterDevice() || (st.isFile() && st.size === 0) };
    const target = readlinkSync(p);
    if (target === "/dev/null") return { path: p, masked: true };
    p = target.startsWith("/") ? under(root, target) : join(dirname(p), target);
  }
  throw new UnitFileError(`${hostPath}: too many levels of symbolic links`);
}

export interface UnitDirs {
  /** "/" for the host. */
  root: string;
  /** Absolute paths inside the root, highest precedence first. */
  dirs: string[];
}

export function systemDirs(root = "/"): UnitDirs {
  return { root, dirs: SYSTEM_UNIT_DIRS };
}

export type Fragment =
  | { state: "found"; name: string; /** path as seen inside the root */ path: string; hostPath: string }
  | { state: "masked"; name: string; path: string }
  | { state: "not-found"; name: string };

/** The file that defines a unit: the first in precedence order; an instance falls back to its template. */
export function findFragment(d: UnitDirs, name: string): Fragment {
  const n = parseUnitName(name);
  const candidates = [name, ...(isInstance(n) ? [templateOf(n)!] : [])];
  for (const candidate of candidates) {
    for (const dir of d.dirs) {
      const inRoot = join(dir, candidate);
      const r = resolveInRoot(d.root, under(d.root, inRoot));
      if (!r) continue;
      if (r.masked) return { state: "masked", name, path: inRoot };
      return { state: "found", name, path: inRoot, hostPath: r.path };
    }
  }
  return { state: "not-found", name };
}

/**
 * Drop-in files in the order systemd applies them: every `*.conf` of `<name>.d/` (plus the
 * template's, the dash-prefix ones like `foo-.service.d/`, and `service.d/`) across the search
 * path, a file name in a higher-precedence directory hiding the same name lower down, then sorted
 * by file name. Masked (→ /dev/null) or empty drop-ins hide without adding anything.
 */
export function findDropIns(d: UnitDirs, name: string): string[] {
  const n = parseUnitName(name);
  const names = [name];
  if (isInstance(n)) names.push(templateOf(n)!);
  const parts = n.prefix.split("-");
  for (let i = parts.length - 1; i >= 1; i--) names.push(`${parts.slice(0, i).join("-")}-.${n.type}`);
  names.push(n.type);
  const chosen = new Map<string, string | null>();
  for (const dir of d.dirs) {
    for (const nm of names) {
      const dropDir = under(d.root, join(dir, `${nm}.d`));
      let files: string[];
      try {
        files = readdirSync(dropDir);
      } catch {
        continue;
      }
      for (const f of files) {
        if (!f.endsWith(".conf") || chosen.has(f)) continue;
        const r = resolveInRoot(d.root, join(dropDir, f));
        chosen.set(f, r && !r.masked ? r.path : null);
      }
    }
  }
  return [...chosen.entries()]
    .filter((e): e is [string, string] => e[1] !== null)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, p]) => p);
}

export type Loaded =
  | {
      load: "loaded";
      name: string;
      /** The fragment's path inside the root. */
      path: string;
      dropIns: string[];
      /** Fragment plus drop-ins, specifiers expanded. */
      unit: UnitFile;
      problems: (ParseProblem & { file: string })[];
    }
  | { load: "masked"; name: string; path: string }
  | { load: "not-found"; name: string }
  | { load: "error"; name: string; message: string };

/** Reads a unit the way systemd's loader does (fragment, drop-ins, specifiers). Never throws. */
export function loadUnit(d: UnitDirs, name: string, ctx: SpecifierContext = {}): Loaded {
  try {
    const n = parseUnitName(name);
    if (isTemplate(n)) return { load: "error", name, message: `${name} is a template; start an instance such as ${n.prefix}@NAME.${n.type}` };
    const frag = findFragment(d, name);
    if (frag.state === "masked") return { load: "masked", name, path: frag.path };
    if (frag.state === "not-found") return { load: "not-found", name };
    const problems: (ParseProblem & { file: string })[] = [];
    const read = (hostPath: string, shown: string): UnitFile => {
      const p = parseUnit(readFileSync(hostPath, "utf8"));
      for (const pr of p.problems) problems.push({ ...pr, file: shown });
      return p.unit;
    };
    const base = read(frag.hostPath, frag.path);
    const dropIns = findDropIns(d, name);
    const merged = mergeUnits(base, ...dropIns.map((p) => read(p, p)));
    for (const s of merged.sections) {
      for (const e of s.entries) e.value = expandSpecifiers(e.value, name, ctx);
    }
    return { load: "loaded", name, path: frag.path, dropIns, unit: merged, problems };
  } catch (e) {
    return { load: "error", name, message: (e as Error).message };
  }
}

// --- writing (shared by both back ends: cloud-config writes the same tree for either) ---

export function writeUnitFile(root: string, name: string, content: string, where: Placement): void {
  parseUnitName(name);
  writeAtomic(under(root, join(placementDir(name, where), name)), content);
}

export function writeDropInFile(root: string, unit: string, dropIn: string, content: string, where: Placement): void {
  parseUnitName(unit);
  if (!dropIn.endsWith(".conf") || dropIn.includes("/") || dropIn.startsWith(".")) {
    throw new UnitFileError(`invalid drop-in name "${dropIn}": must be a file name ending in .conf`);
  }
  writeAtomic(under(root, join(placementDir(unit, where), `${unit}.d`, dropIn)), content);
}

/** What coreos-cloudinit does: remove whatever is at the destination, link it to /dev/null. */
export function maskUnitFile(root: string, name: string, where: Placement): void {
  const path = under(root, join(placementDir(name, where), name));
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  rmSync(path, { force: true, recursive: true });
  symlinkSync("/dev/null", path);
}

/** Removes a mask at the destination (a link to /dev/null or an empty file); real unit files stay. */
export function unmaskUnitFile(root: string, name: string, where: Placement): void {
  const path = under(root, join(placementDir(name, where), name));
  const st = lstatOrNull(path);
  if (!st) return;
  const isMask = st.isSymbolicLink() ? readlinkSync(path) === "/dev/null" : st.isCharacterDevice() || (st.isFile() && st.size === 0);
  if (isMask) rmSync(path, { force: true });
}

export interface EnableResult {
  /** Links created, as `link → target` paths inside the root. */
  created: { link: string; target: string }[];
  /** Like systemctl's "The unit files have no installation config" note. */
  warnings: string[];
}

/**
 * `systemctl [--root R] [--runtime] enable --force NAME` without systemctl: WantedBy= and
 * RequiredBy= links in `<target>.wants|requires/`, Alias= links, Also= units enabled too, a
 * template enabled under its DefaultInstance=. Existing links are replaced (--force).
 */
export function enableUnitFiles(d: UnitDirs, name: string, where: Placement, seen = new Set<string>()): EnableResult {
  const out: EnableResult = { created: [], warnings: [] };
  if (seen.has(name)) return out;
  seen.add(name);
  const n = parseUnitName(name);
  const frag = findFragment(d, name);
  if (frag.state === "masked") throw new UnitFileError(`Unit file ${name} is masked.`);
  if (frag.state === "not-found") throw new UnitFileError(`Unit file ${name} does not exist.`);
  const unit = parseUnit(readFileSync(frag.hostPath, "utf8")).unit;
  let linkName = name;
  if (isTemplate(n)) {
    const def = getValue(unit, "Install", "DefaultInstance");
    if (def === undefined) {
      out.warnings.push(`${name} is a template with no DefaultInstance=; enable an instance such as ${n.prefix}@NAME.${n.type}`);
      return out;
    }
    linkName = `${n.prefix}@${def}.${n.type}`;
  }
  const x = (v: string) => expandSpecifiers(v, linkName);
  const configDir = where.runtime ? "/run/systemd/system" : "/etc/systemd/system";
  const link = (linkPath: string) => {
    const host = under(d.root, linkPath);
    mkdirSync(dirname(host), { recursive: true, mode: 0o755 });
    const st = lstatOrNull(host);
    if (st?.isSymbolicLink() && readlinkSync(host) === frag.path) return;
    if (st) rmSync(host, { force: true });
    symlinkSync(frag.path, host);
    out.created.push({ link: linkPath, target: frag.path });
  };
  const wanted = getWords(unit, "Install", "WantedBy").map(x);
  const required = getWords(unit, "Install", "RequiredBy").map(x);
  const aliases = getWords(unit, "Install", "Alias").map(x);
  const also = getWords(unit, "Install", "Also").map(x);
  for (const t of wanted) link(join(configDir, `${t}.wants`, linkName));
  for (const t of required) link(join(configDir, `${t}.requires`, linkName));
  for (const a of aliases) link(join(configDir, a));
  for (const other of also) {
    const r = enableUnitFiles(d, other, where, seen);
    out.created.push(...r.created);
    out.warnings.push(...r.warnings);
  }
  if (wanted.length + required.length + aliases.length + also.length === 0) {
    out.warnings.push(`The unit files have no installation config (WantedBy=, RequiredBy=, Also=, Alias= settings in the [Install] section, and DefaultInstance= for template units).`);
  }
  return out;
}

/**
 * `systemctl [--runtime] disable NAME`: removes the links its [Install] section (and Also=) would
 * make, in /etc (or /run); returns the removed paths. Links made by hand elsewhere stay.
 */
export function disableUnitFiles(d: UnitDirs, name: string, where: Placement, seen = new Set<string>()): string[] {
  if (seen.has(name)) return [];
  seen.add(name);
  const n = parseUnitName(name);
  const frag = findFragment(d, name);
  if (frag.state !== "found") return [];
  const unit = parseUnit(readFileSync(frag.hostPath, "utf8")).unit;
  const linkName = isTemplate(n) ? `${n.prefix}@${getValue(unit, "Install", "DefaultInstance") ?? ""}.${n.type}` : name;
  const x = (v: string) => expandSpecifiers(v, linkName);
  const configDir = where.runtime ? "/run/systemd/system" : "/etc/systemd/system";
  const candidates = [
    ...getWords(unit, "Install", "WantedBy").map((t) => join(configDir, `${x(t)}.wants`, linkName)),
    ...getWords(unit, "Install", "RequiredBy").map((t) => join(configDir, `${x(t)}.requires`, linkName)),
    ...getWords(unit, "Install", "Alias").map((a) => join(configDir, x(a))),
  ];
  const removed: string[] = [];
  for (const c of candidates) {
    const host = under(d.root, c);
    if (lstatOrNull(host)?.isSymbolicLink()) {
      rmSync(host, { force: true });
      removed.push(c);
    }
  }
  for (const other of getWords(unit, "Install", "Also")) removed.push(...disableUnitFiles(d, x(other), where, seen));
  return removed;
}

/** The units a unit pulls in through `<unit>.wants/` and `.requires/` links, sorted by name. */
export function wantedBy(d: UnitDirs, target: string, kinds: ("wants" | "requires")[] = ["wants", "requires"]): string[] {
  const names = new Set<string>();
  for (const dir of d.dirs) {
    for (const kind of kinds) {
      const p = under(d.root, join(dir, `${target}.${kind}`));
      if (!existsSync(p)) continue;
      for (const f of readdirSync(p)) names.add(f);
    }
  }
  return [...names].sort();
}

/** Every unit name defined on the search path (for `list`), templates excluded. */
export function listUnitNames(d: UnitDirs, type = "service"): string[] {
  const names = new Set<string>();
  for (const dir of d.dirs) {
    let files: string[];
    try {
      files = readdirSync(under(d.root, dir));
    } catch {
      continue;
    }
    for (const f of files) if (f.endsWith(`.${type}`) && !f.includes("@.")) names.add(f);
  }
  return [...names].sort();
}

/**
 * systemctl's UnitFileState: `enabled` (a .wants/.requires/alias link in /etc), `enabled-runtime`
 * (only in /run), `disabled` (has [Install] but no link), `static` (nothing to install).
 */
export function unitFileState(d: UnitDirs, name: string, unit: UnitFile | undefined): string {
  const linkedIn = (configDir: string): boolean => {
    let entries: string[];
    try {
      entries = readdirSync(under(d.root, configDir));
    } catch {
      return false;
    }
    return entries.some((e) => (e.endsWith(".wants") || e.endsWith(".requires")) && lstatOrNull(under(d.root, join(configDir, e, name))) !== null);
  };
  if (linkedIn("/etc/systemd/system")) return "enabled";
  if (linkedIn("/run/systemd/system")) return "enabled-runtime";
  if (!unit) return "static";
  const install = ["WantedBy", "RequiredBy", "Alias", "Also"].some((k) => getWords(unit, "Install", k).length > 0);
  return install ? "disabled" : "static";
}

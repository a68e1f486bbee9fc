// Unit names (systemd.unit(5)): `prefix[@instance].type`, templates `foo@.service`, the
// systemd-escape encoding of paths and strings, and specifier expansion (%i, %n, ...).
import { UnitFileError } from "./unitfile.ts";

export const UNIT_TYPES = ["service", "socket", "device", "mount", "automount", "swap", "target", "path", "timer", "slice", "scope"] as const;
const NETWORK_TYPES = ["network", "netdev", "link"];

export interface UnitName {
  name: string;
  /** Before the `@` (or the whole name without the type). */
  prefix: string;
  /** After the `@`: "" for a template, undefined for a plain unit. */
  instance: string | undefined;
  type: string;
}

const NAME_CHARS = /^[A-Za-z0-9:_.\\-]+$/;

/** Parses and validates a unit name; throws with a readable message. */
export function parseUnitName(name: string): UnitName {
  const dot = name.lastIndexOf(".");
  if (dot <= 0) throw new UnitFileError(`invalid unit name "${name}": no type suffix`);
  const type = name.slice(dot + 1);
  if (!(UNIT_TYPES as readonly string[]).includes(type) && !NETWORK_TYPES.includes(type)) {
    throw new UnitFileError(`invalid unit name "${name}": unknown type "${type}"`);
  }
  const stem = name.slice(0, dot);
  const at = stem.indexOf("@");
  const prefix = at === -1 ? stem : stem.slice(0, at);
  const instance = at === -1 ? undefined : stem.slice(at + 1);
  if (prefix === "" || !NAME_CHARS.test(prefix) || (instance !== undefined && instance !== "" && !/^[A-Za-z0-9:_.\\@-]+$/.test(instance))) {
    throw new UnitFileError(`invalid unit name "${name}"`);
  }
  if (name.length > 255) throw new UnitFileError(`invalid unit name "${name}": longer than 255 characters`);
  return { name, prefix, instance, type };
}

export function isTemplate(n: UnitName): boolean {
  return n.instance === "";
}

export function isInstance(n: UnitName): boolean {
  return n.instance !== undefined && n.instance !== "";
}

/** `foo@bar.service` → `foo@.service`; undefined for non-instances. */
export function templateOf(n: UnitName): string | undefined {
  return isInstance(n) ? `${n.prefix}@.${n.type}` : undefined;
}

/** `foo@.service` + `bar` → `foo@bar.service`. */
export function instanceName(template: string, instance: string): string {
  const n = parseUnitName(template);
  if (!isTemplate(n)) throw new UnitFileError(`${template} is not a template unit`);
  return `${n.prefix}@${instance}.${n.type}`;
}

/** systemd-escape: `/` → `-`, bytes outside [A-Za-z0-9:_.] (and a leading `.`) → `\xNN`. */
export function escapeString(s: string): string {
  let out = "";
  const bytes = new TextEncoder().encode(s);
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    const c = String.fromCharCode(b);
    if (c === "/") out += "-";
    else if (/[A-Za-z0-9:_]/.test(c) || (c === "." && i > 0)) out += c;
    else out += `\\x${b.toString(16).padStart(2, "0")}`;
  }
  return out;
}

/** The inverse of escapeString (`-` → `/`, `\xNN` → byte). */
export function unescapeString(s: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === "-") bytes.push(0x2f);
    else if (c === "\\" && s[i + 1] === "x" && /^[0-9a-fA-F]{2}$/.test(s.slice(i + 2, i + 4))) {
      bytes.push(parseInt(s.slice(i + 2, i + 4), 16));
      i += 3;
    } else bytes.push(...new TextEncoder().encode(c));
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

/** systemd-escape --path: `/` alone is `-`, otherwise surrounding slashes are dropped first. */
export function escapePath(p: string): string {
  const t = p.replace(/\/+/g, "/").replace(/^\/|\/$/g, "");
  return t === "" ? "-" : escapeString(t);
}

/** The inverse of escapePath: always absolute. */
export function unescapePath(s: string): string {
  return s === "-" ? "/" : `/${unescapeString(s)}`;
}

/** Values the host-dependent specifiers expand to; the caller reads them once. */
export interface SpecifierContext {
  hostname?: string;
  machineId?: string;
  bootId?: string;
  kernelRelease?: string;
  user?: string;
  uid?: number;
  home?: string;
  shell?: string;
  gid?: number;
  group?: string;
}

/**
 * Expands systemd.unit(5) specifiers in a setting of unit `name`. An unknown specifier is an
 * error, as systemd refuses the setting ("Failed to resolve specifiers").
 */
export function expandSpecifiers(value: string, name: string, ctx: SpecifierContext = {}): string {
  if (!value.includes("%")) return value;
  const n = parseUnitName(name);
  const stem = n.instance === undefined ? n.prefix : `${n.prefix}@${n.instance}`;
  const dash = n.prefix.lastIndexOf("-");
  const j = dash === -1 ? n.prefix : n.prefix.slice(dash + 1);
  const need = (v: string | number | undefined, c: string): string => {
    if (v === undefined) throw new UnitFileError(`${name}: specifier %${c} is not known on this host`);
    return String(v);
  };
  return value.replace(/%(.?)/gs, (_, c: string) => {
    switch (c) {
      case "%":
        return "%";
      case "n":
        return n.name;
      case "N":
        return stem;
      case "p":
        return n.prefix;
      case "P":
        return unescapeString(n.prefix);
      case "i":
        return n.instance ?? "";
      case "I":
        return unescapeString(n.instance ?? "");
      case "f":
        return unescapePath(n.instance ? n.instance : n.prefix);
      case "j":
        return j;
      case "J":
        return unescapeString(j);
      case "H":
        return need(ctx.hostname, c);
      case "l":
        return need(ctx.hostname, c).split(".")[0]!;
      case "m":
        return need(ctx.machineId, c);
      case "b":
        return need(ctx.bootId, c);
      case "v":
        return need(ctx.kernelRelease, c);
      case "u":
        return need(ctx.user, c);
      case "U":
        return need(ctx.uid, c);
      case "g":
        return need(ctx.group, c);
      case "G":
        return need(ctx.gid, c);
      case "h":
        return need(ctx.home, c);
      case "s":
        return need(ctx.shell, c);
      case "t":
        return "/run";
      case "S":
        return "/var/lib";
      case "C":
        return "/var/cache";
      case "L":
        return "/var/log";
      case "E":
        return "/etc";
      case "T":
        return "/tmp";
      case "V":
        return "/var/tmp";
      default:
        throw new UnitFileError(`${name}: unknown specifier %${c}`);
    }
  });
}

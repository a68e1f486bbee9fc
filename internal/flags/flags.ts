// Go-`flag`-style parsing shared by the daemons: `-name v`, `--name v`, `--name=v`, bare booleans,
// and every flag also read from PREFIX_NAME in the environment (cloud-config writes ETCD_* drop-ins).
// The command line wins over the environment, as in etcd.

export type FlagKind = "string" | "bool" | "uint";

export interface FlagDef {
  readonly kind: FlagKind;
  readonly default: string | boolean | number;
  readonly description: string;
}

type ValueOf<D extends FlagDef> = D["kind"] extends "bool" ? boolean : D["kind"] extends "uint" ? number : string;
export type FlagValues<Defs extends Record<string, FlagDef>> = { -readonly [K in keyof Defs]: ValueOf<Defs[K]> };

export interface Parsed<Defs extends Record<string, FlagDef>> {
  values: FlagValues<Defs>;
  /** Names given explicitly (command line or environment), so callers can tell a default from a choice. */
  given: Set<keyof Defs & string>;
  positionals: string[];
  help: boolean;
}

/** A bad command line: the message is the one line the user sees before exit 2. */
export class FlagError extends Error {}

const BOOL_TRUE = new Set(["1", "t", "T", "TRUE", "true", "True"]);
const BOOL_FALSE = new Set(["0", "f", "F", "FALSE", "false", "False"]);

export function parseBool(s: string): boolean | undefined {
  if (BOOL_TRUE.has(s)) return true;
  if (BOOL_FALSE.has(s)) return false;
  return undefined;
}

/** Base-10 unsigned integer within JS's safe range; undefined for anything else (Go rejects "-1", "1e3", " 1"). */
export function parseUint(s: string): number | undefined {
  if (!/^[0-9]+$/.test(s)) return undefined;
  const n = Number(s);
  return Number.isSafeInteger(n) ? n : undefined;
}

function convert(name: string, def: FlagDef, raw: string, from: string): string | boolean | number {
  switch (def.kind) {
    case "string":
      return raw;
    case "bool": {
      const b = parseBool(raw);
      if (b === undefined) throw new FlagError(`invalid boolean value "${raw}" for ${from}${name}`);
      return b;
    }
    case "uint": {
      const n = parseUint(raw);
      if (n === undefined) throw new FlagError(`invalid value "${raw}" for ${from}${name}: parse error`);
      return n;
    }
  }
}

export function envName(prefix: string, flag: string): string {
  return `${prefix}_${flag.replaceAll("-", "_").toUpperCase()}`;
}

export function parseFlags<Defs extends Record<string, FlagDef>>(
  defs: Defs,
  argv: readonly string[],
  env: Record<string, string | undefined>,
  envPrefix: string,
): Parsed<Defs> {
  const values: Record<string, string | boolean | number> = {};
  const given = new Set<string>();
  for (const [name, def] of Object.entries(defs)) values[name] = def.default;

  for (const name of Object.keys(defs)) {
    const raw = env[envName(envPrefix, name)];
    if (raw === undefined) continue;
    values[name] = convert(name, defs[name]!, raw, `environment variable ${envName(envPrefix, name)} for flag -`);
    given.add(name);
  }

  const positionals: string[] = [];
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith("-") || arg === "-") {
      positionals.push(arg);
      continue;
    }
    const body = arg.replace(/^--?/, "");
    const eq = body.indexOf("=");
    const name = eq === -1 ? body : body.slice(0, eq);
    if (name === "h" || name === "help") {
      help = true;
      continue;
    }
    const def = defs[name];
    if (!def) throw new FlagError(`flag provided but not defined: -${name}`);
    let raw: string;
    if (eq !== -1) raw = body.slice(eq + 1);
    else if (def.kind === "bool") raw = "true";
    else {
      const next = argv[i + 1];
      if (next === undefined) throw new FlagError(`flag needs an argument: -${name}`);
      raw = next;
      i++;
    }
    values[name] = convert(name, def, raw, "flag -");
    given.add(name);
  }
  return { values: values as FlagValues<Defs>, given: given as Set<keyof Defs & string>, positionals, help };
}

/** Usage lines in the style of Go's flag.PrintDefaults. */
export function usage(defs: Record<string, FlagDef>, envPrefix: string): string {
  return Object.entries(defs)
    .map(([name, d]) => {
      const dflt = d.kind === "string" ? `"${d.default}"` : String(d.default);
      return `  --${name}${d.kind === "bool" ? "" : ` <${d.kind}>`}\n      ${d.description} (default ${dflt}; env ${envName(envPrefix, name)})`;
    })
    .join("\n");
}

// Command-line parsing exactly as etcdctl v2 does it: Go's flag package under urfave/cli v1.22.
// Its quirks are part of the interface people script against: a flag after the arguments only
// counts if it is one of the command's own (`set /k v --ttl 5` works, `get /k -z` ignores -z),
// and a flag's value is whatever follows it (`watch -r / --after-index 5` ends parsing at "/").

export type FlagKind = "bool" | "string" | "int" | "duration";

export interface FlagDef {
  /** Names as urfave declares them: the first is canonical ("recursive, r" => ["recursive", "r"]). */
  names: string[];
  kind: FlagKind;
  usage: string;
  /** Shown in help as "(default: ...)"; also the value when the flag is absent. */
  defaultValue?: string | number | boolean;
  /** urfave's placeholder (the `simple` in "--output simple, -o simple"). */
  placeholder?: string;
  /** Help text appended verbatim instead of the computed "(default: ...)". */
  hideDefault?: boolean;
}

export type FlagValue = string | number | boolean;

export class FlagError extends Error {}

export interface Parsed {
  values: Map<string, FlagValue>;
  /** Canonical names given on the command line. */
  set: Set<string>;
  args: string[];
}

export const HELP_FLAG: FlagDef = { names: ["help", "h"], kind: "bool", usage: "show help" };

/** Go's flag.FlagSet.Parse (ContinueOnError) over `defs`, plus urfave's alias normalisation. */
export function parseFlags(defs: FlagDef[], argv: string[]): Parsed {
  const byName = new Map<string, FlagDef>();
  for (const d of defs) for (const n of d.names) byName.set(n, d);
  const values = new Map<string, FlagValue>();
  const seenNames = new Set<string>();
  let args = [...argv];

  for (;;) {
    const s = args[0];
    if (s === undefined || s.length < 2 || s[0] !== "-") break;
    let minuses = 1;
    if (s[1] === "-") {
      minuses = 2;
      if (s.length === 2) {
        args = args.slice(1);
        break;
      }
    }
    let name = s.slice(minuses);
    if (name.length === 0 || name[0] === "-" || name[0] === "=") throw new FlagError(`bad flag syntax: ${s}`);
    args = args.slice(1);
    let value: string | undefined;
    const eq = name.indexOf("=", 1);
    if (eq >= 1) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    const def = byName.get(name);
    if (!def) throw new FlagError(`flag provided but not defined: -${name}`);
    seenNames.add(name);
    const canon = def.names[0]!;
    if (def.kind === "bool") {
      if (value === undefined) values.set(canon, true);
      else {
        const b = parseBool(value);
        if (b === null) throw new FlagError(`invalid boolean value ${goQuote(value)} for -${name}: parse error`);
        values.set(canon, b);
      }
      continue;
    }
    if (value === undefined) {
      if (args.length === 0) throw new FlagError(`flag needs an argument: -${name}`);
      value = args[0]!;
      args = args.slice(1);
    }
    values.set(canon, convert(def.kind, value, name));
  }

  // urfave/cli: two spellings of one flag on the same command line are an error.
  const set = new Set<string>();
  for (const d of defs) {
    let first = "";
    for (const n of d.names) {
      if (!seenNames.has(n)) continue;
      if (first !== "") throw new FlagError(`Cannot use two forms of the same flag: ${n} ${first}`);
      first = n;
    }
    if (first !== "") set.add(d.names[0]!);
  }
  for (const d of defs) {
    const canon = d.names[0]!;
    if (!values.has(canon)) values.set(canon, d.defaultValue ?? (d.kind === "bool" ? false : d.kind === "string" ? "" : 0));
  }
  return { values, set, args };
}

function convert(kind: FlagKind, value: string, name: string): FlagValue {
  if (kind === "string") return value;
  const v = kind === "int" ? parseGoInt(value) : parseGoDuration(value);
  if (typeof v === "string") throw new FlagError(`invalid value ${goQuote(value)} for flag -${name}: ${v}`);
  return v;
}

/** strconv.ParseBool. */
export function parseBool(s: string): boolean | null {
  if (["1", "t", "T", "TRUE", "true", "True"].includes(s)) return true;
  if (["0", "f", "F", "FALSE", "false", "False"].includes(s)) return false;
  return null;
}

/** strconv.ParseInt(s, 0, 64); the error is flag's wording ("parse error", "value out of range"). */
export function parseGoInt(s: string): number | string {
  const m = /^([+-]?)(0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|0[0-7_]*|[1-9][0-9_]*)$/.exec(s);
  if (!m) return "parse error";
  const body = m[2]!;
  const prefixed = /^0[xXbBoO]/.test(body) || (body.length > 1 && body[0] === "0");
  if (body.includes("_") && (!prefixed || /__|_$|^0[xXbBoO]?_?$/.test(body))) return "parse error";
  const digits = body.replace(/_/g, "");
  let n: bigint;
  if (/^0[xX]/.test(digits)) n = BigInt(digits);
  else if (/^0[bB]/.test(digits)) n = BigInt(digits);
  else if (/^0[oO]/.test(digits)) n = BigInt(`0o${digits.slice(2)}`);
  else if (digits.length > 1 && digits[0] === "0") n = BigInt(`0o${digits.slice(1)}`);
  else n = BigInt(digits);
  if (m[1] === "-") n = -n;
  if (n > 9223372036854775807n || n < -9223372036854775808n) return "value out of range";
  return Number(n);
}

const UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, "µs": 1e-3, "μs": 1e-3, ms: 1, s: 1000, m: 60000, h: 3600000 };

/** time.ParseDuration, in milliseconds. */
export function parseGoDuration(s: string): number | string {
  let rest = s;
  let sign = 1;
  if (rest[0] === "-" || rest[0] === "+") {
    if (rest[0] === "-") sign = -1;
    rest = rest.slice(1);
  }
  if (rest === "0") return 0;
  if (rest === "") return "parse error";
  let total = 0;
  while (rest !== "") {
    const m = /^([0-9]*(?:\.[0-9]*)?)([^0-9.]+)/.exec(rest);
    if (!m || m[1] === "" || m[1] === ".") return "parse error";
    const unit = UNITS[m[2]!];
    if (unit === undefined) return "parse error";
    total += Number(m[1]) * unit;
    rest = rest.slice(m[0].length);
  }
  return sign * total;
}

/**
 * urfave/cli v1.22 reorderArgs: the command's own flags (and the word after each, as its
 * possible value) move to the front; everything else keeps its order; "--" ends reordering.
 */
export function reorderArgs(defs: FlagDef[], args: string[]): string[] {
  const reordered: string[] = [];
  let remaining: string[] = [];
  let nextMayBeValue = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (nextMayBeValue && !isOwnFlag(defs, arg)) {
      nextMayBeValue = false;
      reordered.push(arg);
    } else if (arg === "--") {
      remaining = ["--", ...remaining, ...args.slice(i + 1)];
      break;
    } else if (isOwnFlag(defs, arg)) {
      reordered.push(arg);
      nextMayBeValue = !arg.includes("=");
    } else {
      remaining.push(arg);
    }
  }
  return [...reordered, ...remaining];
}

function isOwnFlag(defs: FlagDef[], arg: string): boolean {
  if (arg === "-" || arg === "--" || !arg.startsWith("-")) return false;
  let name = arg.startsWith("--") ? arg.slice(2) : arg.slice(1);
  name = name.split("=")[0]!;
  return defs.some((d) => d.names.includes(name));
}

/** Go's %q / strconv.Quote for the strings etcdctl quotes. */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === "\\") out += "\\\\";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (ch === "\x07") out += "\\a";
    else if (ch === "\b") out += "\\b";
    else if (ch === "\f") out += "\\f";
    else if (ch === "\v") out += "\\v";
    else if (c < 0x20 || c === 0x7f) out += `\\x${c.toString(16).padStart(2, "0")}`;
    else if (c >= 0xd800 && c <= 0xdfff) out += "\\ufffd";
    else out += ch;
  }
  return `${out}"`;
}

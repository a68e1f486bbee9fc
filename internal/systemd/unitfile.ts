// systemd unit files (systemd.syntax(7)): parse, serialize, merge drop-ins, and read values the way
// systemd does. Comments are not kept: a round trip keeps the meaning (sections, keys, order of
// repeated keys, empty resets), which is what a unit's reader sees.

export interface Entry {
  key: string;
  value: string;
  /** 1-based line where the assignment started (0 for entries built in code). */
  line: number;
}

export interface Section {
  name: string;
  entries: Entry[];
}

/** Sections in first-appearance order; a section named twice in one file is one section. */
export interface UnitFile {
  sections: Section[];
}

export interface ParseProblem {
  line: number;
  message: string;
}

export interface Parsed {
  unit: UnitFile;
  /** What systemd would log and ignore ("Assignment outside of section. Ignoring."). */
  problems: ParseProblem[];
}

/** A unit file that cannot be used at all; the message names the file and line. */
export class UnitFileError extends Error {}

/**
 * systemd's parser: whitespace around lines and `=` is dropped, `#`/`;` lines are comments, a
 * trailing backslash joins the next line with a space (comment lines inside a continuation are
 * skipped, as systemd >= 240 does), `[Name]` opens a section. Lines it cannot use are reported and
 * skipped, as systemd does, so a unit systemd loads is also loaded here.
 */
export function parseUnit(text: string): Parsed {
  const sections: Section[] = [];
  const byName = new Map<string, Section>();
  const problems: ParseProblem[] = [];
  let current: Section | null = null;
  const lines = text.replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  while (i < lines.length) {
    const start = i + 1;
    const first = lines[i++]!;
    if (isBlankOrComment(first)) continue;
    // A trailing unescaped backslash becomes a space and the next raw line is appended (systemd's
    // conf-parser); comment lines inside a continuation are skipped, an empty line ends it.
    let line = first;
    while (endsEscaped(line)) {
      line = `${line.slice(0, -1)} `;
      while (i < lines.length && isComment(lines[i]!)) i++;
      if (i >= lines.length) break;
      line += lines[i++]!;
    }
    line = line.trim();
    if (line[0] === "[") {
      if (!line.endsWith("]")) {
        problems.push({ line: start, message: `invalid section header '${line}'` });
        current = null;
        continue;
      }
      const name = line.slice(1, -1);
      if (name === "" || /[[\]]/.test(name)) {
        problems.push({ line: start, message: `invalid section header '${line}'` });
        current = null;
        continue;
      }
      current = byName.get(name) ?? null;
      if (!current) {
        current = { name, entries: [] };
        byName.set(name, current);
        sections.push(current);
      }
      continue;
    }
    if (!current) {
      problems.push({ line: start, message: "assignment outside of section, ignoring" });
      continue;
    }
    const eq = line.indexOf("=");
    if (eq === -1) {
      problems.push({ line: start, message: `missing '=', ignoring line '${line}'` });
      continue;
    }
    const key = line.slice(0, eq).trim();
    if (key === "") {
      problems.push({ line: start, message: "empty key, ignoring" });
      continue;
    }
    current.entries.push({ key, value: line.slice(eq + 1).trim(), line: start });
  }
  return { unit: { sections }, problems };
}

function isComment(l: string): boolean {
  const t = l.trimStart();
  return t[0] === "#" || t[0] === ";";
}

function isBlankOrComment(l: string): boolean {
  return l.trim() === "" || isComment(l);
}

function endsEscaped(l: string): boolean {
  let n = 0;
  for (let j = l.length - 1; j >= 0 && l[j] === "\\"; j--) n++;
  return n % 2 === 1;
}

/** The canonical text: `[Section]` then `Key=Value` lines, a blank line between sections. */
export function serializeUnit(unit: UnitFile): string {
  return unit.sections
    .map((s) => {
      for (const e of s.entries) {
        // Line breaks, a trailing backslash and surrounding white space cannot come back from a parse.
        if (/[\n\r]/.test(e.value) || e.value.endsWith("\\") || e.value.trim() !== e.value) {
          throw new UnitFileError(`[${s.name}] ${e.key}: value cannot be written in a unit file: ${JSON.stringify(e.value)}`);
        }
      }
      return `[${s.name}]\n${s.entries.map((e) => `${e.key}=${e.value}\n`).join("")}`;
    })
    .join("\n");
}

/**
 * Drop-ins applied over a unit, in order: entries are appended per section, so a later list entry
 * adds and a later scalar wins, and an empty assignment in a drop-in resets the list (systemd's
 * semantics fall out of "read all assignments in order").
 */
export function mergeUnits(base: UnitFile, ...dropIns: UnitFile[]): UnitFile {
  const sections: Section[] = base.sections.map((s) => ({ name: s.name, entries: [...s.entries] }));
  const byName = new Map(sections.map((s) => [s.name, s]));
  for (const d of dropIns) {
    for (const s of d.sections) {
      let target = byName.get(s.name);
      if (!target) {
        target = { name: s.name, entries: [] };
        byName.set(s.name, target);
        sections.push(target);
      }
      target.entries.push(...s.entries);
    }
  }
  return { sections };
}

function section(unit: UnitFile, name: string): Section | undefined {
  return unit.sections.find((s) => s.name === name);
}

/** A single-valued setting: the last assignment wins; an empty one means "default" (undefined). */
export function getValue(unit: UnitFile, sectionName: string, key: string): string | undefined {
  const s = section(unit, sectionName);
  if (!s) return undefined;
  for (let i = s.entries.length - 1; i >= 0; i--) {
    const e = s.entries[i]!;
    if (e.key === key) return e.value === "" ? undefined : e.value;
  }
  return undefined;
}

/** A list setting: every assignment adds, an empty assignment clears what came before. */
export function getList(unit: UnitFile, sectionName: string, key: string): string[] {
  const s = section(unit, sectionName);
  if (!s) return [];
  let out: string[] = [];
  for (const e of s.entries) {
    if (e.key !== key) continue;
    if (e.value === "") out = [];
    else out.push(e.value);
  }
  return out;
}

/** Like getList, with each value split into whitespace-separated words (WantedBy=a b). */
export function getWords(unit: UnitFile, sectionName: string, key: string): string[] {
  return getList(unit, sectionName, key).flatMap((v) => splitWords(v));
}

const BOOL_TRUE = new Set(["1", "yes", "y", "true", "t", "on"]);
const BOOL_FALSE = new Set(["0", "no", "n", "false", "f", "off"]);

/** systemd's parse_boolean; undefined for anything else. */
export function parseBoolean(s: string): boolean | undefined {
  const l = s.toLowerCase();
  if (BOOL_TRUE.has(l)) return true;
  if (BOOL_FALSE.has(l)) return false;
  return undefined;
}

const SPAN_UNITS: [RegExp, number][] = [
  [/^(us|usec|µs)$/, 0.001],
  [/^(ms|msec)$/, 1],
  [/^(s|sec|second|seconds|)$/, 1000],
  [/^(m|min|minute|minutes)$/, 60_000],
  [/^(h|hr|hour|hours)$/, 3_600_000],
  [/^(d|day|days)$/, 86_400_000],
  [/^(w|week|weeks)$/, 604_800_000],
];

/** systemd.time(7) time spans ("90", "5s", "1min 30s", "100ms", "infinity") in milliseconds. */
export function parseTimespan(s: string): number | undefined {
  const t = s.trim();
  if (t === "infinity") return Infinity;
  if (t === "") return undefined;
  let total = 0;
  const re = /\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zµ]*)/gy;
  let m: RegExpExecArray | null;
  let pos = 0;
  while (pos < t.length && (m = re.exec(t)) !== null) {
    const unit = SPAN_UNITS.find(([r]) => r.test(m![2]!));
    if (!unit) return undefined;
    total += Number(m[1]) * unit[1];
    pos = re.lastIndex;
  }
  return pos === t.length ? total : undefined;
}

// --- words and quoting (systemd's extract_first_word with EXTRACT_UNQUOTE | EXTRACT_CUNESCAPE) ---

const C_ESCAPES: Record<string, string> = { a: "\x07", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t", v: "\v", "\\": "\\", '"': '"', "'": "'", s: " " };

function cunescapeAt(s: string, i: number): [string, number] {
  const c = s[i];
  if (c === undefined) return ["\\", i];
  if (c in C_ESCAPES) return [C_ESCAPES[c]!, i + 1];
  if (c === "x" && /^[0-9a-fA-F]{2}/.test(s.slice(i + 1))) return [String.fromCharCode(parseInt(s.slice(i + 1, i + 3), 16)), i + 3];
  if (/[0-7]/.test(c) && /^[0-7]{3}/.test(s.slice(i))) return [String.fromCharCode(parseInt(s.slice(i, i + 3), 8)), i + 3];
  if (c === "u" && /^[0-9a-fA-F]{4}/.test(s.slice(i + 1))) return [String.fromCodePoint(parseInt(s.slice(i + 1, i + 5), 16)), i + 5];
  return [c, i + 1];
}

/** One word from `s` at `i`: quotes group, backslash escapes; returns null at the end. */
export function nextWord(s: string, i: number): { word: string; end: number; quoted: boolean } | null {
  while (i < s.length && /\s/.test(s[i]!)) i++;
  if (i >= s.length) return null;
  let word = "";
  let quoted = false;
  while (i < s.length && !/\s/.test(s[i]!)) {
    const c = s[i]!;
    if (c === '"' || c === "'") {
      quoted = true;
      const close = c;
      i++;
      while (i < s.length && s[i] !== close) {
        if (s[i] === "\\") {
          const [ch, next] = cunescapeAt(s, i + 1);
          word += ch;
          i = next;
        } else word += s[i++];
      }
      if (i >= s.length) throw new UnitFileError(`unbalanced quotes in: ${s}`);
      i++;
    } else if (c === "\\") {
      const [ch, next] = cunescapeAt(s, i + 1);
      word += ch;
      i = next;
    } else {
      word += c;
      i++;
    }
  }
  return { word, end: i, quoted };
}

export function splitWords(s: string): string[] {
  const out: string[] = [];
  let i = 0;
  for (;;) {
    const w = nextWord(s, i);
    if (!w) return out;
    out.push(w.word);
    i = w.end;
  }
}

/** `Environment=` values: each word is NAME=value (quotes group a word with spaces). */
export function parseEnvironmentAssignments(values: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (const v of values) {
    for (const w of splitWords(v)) {
      const eq = w.indexOf("=");
      if (eq <= 0 || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(w.slice(0, eq))) throw new UnitFileError(`invalid environment assignment: ${w}`);
      out.push([w.slice(0, eq), w.slice(eq + 1)]);
    }
  }
  return out;
}

/**
 * An environment file as systemd reads it (EnvironmentFile=): KEY=VALUE lines, `#`/`;` comments,
 * single quotes literal, double quotes with backslash escapes, a trailing backslash continues an
 * unquoted value, an optional `export ` prefix.
 */
export function parseEnvironmentFile(text: string): [string, string][] {
  const out: [string, string][] = [];
  const s = text.replace(/\r\n?/g, "\n");
  let i = 0;
  while (i < s.length) {
    // Start of a line: skip blanks and comments.
    while (i < s.length && (s[i] === " " || s[i] === "\t" || s[i] === "\n")) i++;
    if (i >= s.length) break;
    if (s[i] === "#" || s[i] === ";") {
      while (i < s.length && s[i] !== "\n") i++;
      continue;
    }
    let keyEnd = i;
    while (keyEnd < s.length && s[keyEnd] !== "=" && s[keyEnd] !== "\n") keyEnd++;
    let key = s.slice(i, keyEnd).trim();
    if (key.startsWith("export ")) key = key.slice(7).trim();
    if (s[keyEnd] !== "=") {
      i = keyEnd; // a line without '=' is ignored
      continue;
    }
    i = keyEnd + 1;
    while (i < s.length && (s[i] === " " || s[i] === "\t")) i++;
    let value = "";
    let pendingSpace = "";
    while (i < s.length && s[i] !== "\n") {
      const c = s[i]!;
      if (c === "'") {
        const close = s.indexOf("'", i + 1);
        const end = close === -1 ? s.length : close;
        value += pendingSpace + s.slice(i + 1, end);
        pendingSpace = "";
        i = end + 1;
      } else if (c === '"') {
        i++;
        value += pendingSpace;
        pendingSpace = "";
        while (i < s.length && s[i] !== '"') {
          if (s[i] === "\\" && i + 1 < s.length) {
            const n = s[i + 1]!;
            if (n === "\n") i += 2;
            else if ('"\\`$'.includes(n)) {
              value += n;
              i += 2;
            } else value += s[i++];
          } else value += s[i++];
        }
        i++;
      } else if (c === "\\") {
        if (s[i + 1] === "\n") i += 2;
        else if (i + 1 < s.length) {
          value += pendingSpace + s[i + 1];
          pendingSpace = "";
          i += 2;
        } else i++;
      } else if (c === " " || c === "\t") {
        pendingSpace += c;
        i++;
      } else {
        value += pendingSpace + c;
        pendingSpace = "";
        i++;
      }
    }
    if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) out.push([key, value]);
  }
  return out;
}

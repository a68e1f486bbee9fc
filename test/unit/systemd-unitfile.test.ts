// The unit layer's pure parts: unit-file syntax, round trips, drop-in merging and order, names,
// specifiers, escaping, time spans, environment files and command lines.
import { describe, expect, test } from "bun:test";
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { escapePath, escapeString, expandSpecifiers, instanceName, parseUnitName, unescapePath, unescapeString } from "../../internal/systemd/names.ts";
import { findDropIns, findFragment, loadUnit } from "../../internal/systemd/paths.ts";
import { expandCommand, parseExec, serviceFromUnit } from "../../internal/systemd/service.ts";
import {
  getList,
  getValue,
  getWords,
  mergeUnits,
  parseEnvironmentAssignments,
  parseEnvironmentFile,
  parseTimespan,
  parseUnit,
  serializeUnit,
  splitWords,
  UnitFileError,
} from "../../internal/systemd/unitfile.ts";
import { cleanup, tempDir } from "../helpers/procs.ts";
import { Prng } from "../sim/prng.ts";

const kv = (text: string) => parseUnit(text).unit.sections.map((s) => [s.name, s.entries.map((e) => [e.key, e.value])]);

describe("parseUnit", () => {
  const cases: [string, string, unknown][] = [
    ["sections and keys", "[Unit]\nDescription=Foo\n[Service]\nExecStart=/bin/true\n", [["Unit", [["Description", "Foo"]]], ["Service", [["ExecStart", "/bin/true"]]]]],
    ["whitespace around lines and =", "  [Unit]  \n  Description =  a b  \n", [["Unit", [["Description", "a b"]]]]],
    ["comments # and ; are skipped", "# top\n[Unit]\n; semi\n  # indented\nA=1\n", [["Unit", [["A", "1"]]]]],
    ["# after a value is part of it", "[Unit]\nA=1 # not a comment\n", [["Unit", [["A", "1 # not a comment"]]]]],
    ["repeated keys keep order", "[Service]\nEnvironment=A=1\nEnvironment=B=2\n", [["Service", [["Environment", "A=1"], ["Environment", "B=2"]]]]],
    ["empty assignment kept (it resets lists)", "[Service]\nExecStartPre=/a\nExecStartPre=\n", [["Service", [["ExecStartPre", "/a"], ["ExecStartPre", ""]]]]],
    ["continuation: backslash becomes a space", "[Service]\nExecStart=/bin/echo a \\\n  b\n", [["Service", [["ExecStart", "/bin/echo a    b"]]]]],
    ["continuation skips comment lines", "[Service]\nExecStart=/bin/echo a\\\n# c\n b\n", [["Service", [["ExecStart", "/bin/echo a  b"]]]]],
    ["escaped backslash is not a continuation", "[Service]\nA=x\\\\\nB=y\n", [["Service", [["A", "x\\\\"], ["B", "y"]]]]],
    ["a section named twice is one section", "[Unit]\nA=1\n[Service]\nB=2\n[Unit]\nC=3\n", [["Unit", [["A", "1"], ["C", "3"]]], ["Service", [["B", "2"]]]]],
    ["CRLF line ends", "[Unit]\r\nA=1\r\n", [["Unit", [["A", "1"]]]]],
    ["= inside the value", "[Service]\nEnvironment=A=b=c\n", [["Service", [["Environment", "A=b=c"]]]]],
  ];
  for (const [name, text, want] of cases) test(name, () => expect(kv(text)).toEqual(want as never));

  test("lines systemd ignores are reported with their line numbers", () => {
    const p = parseUnit("A=1\n[Unit]\njunk\n[Broken\n=x\nB=2\n");
    expect(p.problems).toEqual([
      { line: 1, message: "assignment outside of section, ignoring" },
      { line: 3, message: "missing '=', ignoring line 'junk'" },
      { line: 4, message: "invalid section header '[Broken'" },
      { line: 5, message: "assignment outside of section, ignoring" },
      { line: 6, message: "assignment outside of section, ignoring" },
    ]);
  });

  test("entries remember the line where they started", () => {
    const p = parseUnit("[Service]\n\nExecStart=/a \\\n b\nX=1\n");
    expect(p.unit.sections[0]!.entries.map((e) => e.line)).toEqual([3, 5]);
  });
});

describe("serializeUnit round trip", () => {
  const texts = [
    "[Unit]\nDescription=Foo bar\nAfter=a.service b.service\n\n[Service]\nExecStart=/bin/sh -c 'echo \"hi\"'\nEnvironment=\"A=1 2\" B=3\nEnvironment=\nRestart=always\n\n[Install]\nWantedBy=multi-user.target\n",
    "# comment\n[Service]\nExecStart=/a \\\n  --flag\n;x\n[Service]\nUser=core\n",
    "[X-Custom]\nKey With Space=v\n",
  ];
  for (const [i, t] of texts.entries()) {
    test(`example ${i}: parse(serialize(parse(x))) == parse(x)`, () => {
      const once = parseUnit(t).unit;
      const text = serializeUnit(once);
      const twice = parseUnit(text);
      expect(twice.problems).toEqual([]);
      const strip = (u: typeof once) => u.sections.map((s) => ({ name: s.name, entries: s.entries.map(({ key, value }) => ({ key, value })) }));
      expect(strip(twice.unit)).toEqual(strip(once));
      expect(serializeUnit(twice.unit)).toBe(text);
    });
  }

  test("seeded random units: parse never throws, parse(serialize(u)) == u", () => {
    const rnd = new Prng(20261122);
    const pick = <T>(xs: T[]): T => xs[rnd.int(xs.length)]!;
    const chars = ["a", "Z", "0", " ", "=", "#", ";", "\"", "'", "%", "$", "\\", "[", "]", "é", "\t", "/", "-"];
    const text = (n: number) => Array.from({ length: n }, () => pick(chars)).join("");
    for (let round = 0; round < 300; round++) {
      // Any text at all: systemd's parser reports, it does not fail.
      const junk = Array.from({ length: rnd.int(8) }, () => text(rnd.int(20)) + pick(["", "\\"])).join(pick(["\n", "\r\n"]));
      expect(() => parseUnit(junk)).not.toThrow();
      // A unit built from parts systemd can hold survives the round trip.
      const sections = Array.from({ length: 1 + rnd.int(4) }, (_, i) => ({
        name: pick(["Unit", "Service", "Install", "X-Custom", `S${i}`]),
        entries: Array.from({ length: rnd.int(6) }, () => ({
          key: pick(["ExecStart", "Environment", "Description", "After", "X-Key"]),
          value: text(rnd.int(16)).replace(/[\s\\]+$/, "").trim(),
          line: 0,
        })),
      }));
      const once = parseUnit(serializeUnit({ sections })).unit;
      const twice = parseUnit(serializeUnit(once)).unit;
      const strip = (u: typeof once) => u.sections.map((x) => [x.name, x.entries.map((e) => [e.key, e.value])]);
      expect(strip(twice)).toEqual(strip(once));
      // Same sections merged in order, every value kept as written.
      const merged = new Map<string, [string, string][]>();
      for (const x of sections) merged.set(x.name, [...(merged.get(x.name) ?? []), ...x.entries.map((e): [string, string] => [e.key, e.value])]);
      expect(strip(once)).toEqual([...merged.entries()]);
    }
  });

  test("the canonical form", () => {
    expect(serializeUnit(parseUnit("[A]\nx = 1\n[B]\ny=2").unit)).toBe("[A]\nx=1\n\n[B]\ny=2\n");
  });

  test("a value that cannot be written is refused, not corrupted", () => {
    expect(() => serializeUnit({ sections: [{ name: "S", entries: [{ key: "A", value: "x\ny", line: 0 }] }] })).toThrow(UnitFileError);
    expect(() => serializeUnit({ sections: [{ name: "S", entries: [{ key: "A", value: "x\\", line: 0 }] }] })).toThrow(UnitFileError);
    expect(() => serializeUnit({ sections: [{ name: "S", entries: [{ key: "A", value: " padded", line: 0 }] }] })).toThrow(UnitFileError);
  });
});

describe("values", () => {
  const u = parseUnit("[Service]\nExecStartPre=/a\nExecStartPre=/b\nExecStartPre=\nExecStartPre=/c\nType=simple\nType=oneshot\nUser=\n[Install]\nWantedBy=a.target b.target\nWantedBy=c.target\n").unit;
  test("lists: an empty assignment resets", () => expect(getList(u, "Service", "ExecStartPre")).toEqual(["/c"]));
  test("scalars: the last wins; empty means default", () => {
    expect(getValue(u, "Service", "Type")).toBe("oneshot");
    expect(getValue(u, "Service", "User")).toBeUndefined();
    expect(getValue(u, "Nope", "X")).toBeUndefined();
  });
  test("word lists", () => expect(getWords(u, "Install", "WantedBy")).toEqual(["a.target", "b.target", "c.target"]));

  test("drop-ins merge: lists append, scalars override, empty resets", () => {
    const base = parseUnit("[Service]\nEnvironment=A=1\nRestart=no\nExecStart=/old\n").unit;
    const d1 = parseUnit("[Service]\nEnvironment=B=2\nRestart=always\n").unit;
    const d2 = parseUnit("[Service]\nExecStart=\nExecStart=/new\n[Unit]\nDescription=D\n").unit;
    const m = mergeUnits(base, d1, d2);
    expect(parseEnvironmentAssignments(getList(m, "Service", "Environment"))).toEqual([["A", "1"], ["B", "2"]]);
    expect(getValue(m, "Service", "Restart")).toBe("always");
    expect(getList(m, "Service", "ExecStart")).toEqual(["/new"]);
    expect(getValue(m, "Unit", "Description")).toBe("D");
    expect(getList(base, "Service", "ExecStart")).toEqual(["/old"]);
  });

  const spans: [string, number | undefined][] = [
    ["90", 90_000], ["5s", 5000], ["100ms", 100], ["1min 30s", 90_000], ["2h", 7_200_000], ["1.5s", 1500], ["infinity", Infinity], ["", undefined], ["5 parsecs", undefined], ["-1", undefined],
  ];
  for (const [s, want] of spans) test(`time span ${JSON.stringify(s)}`, () => expect(parseTimespan(s)).toBe(want));

  test("words: quotes group, escapes unescape", () => {
    expect(splitWords(`a "b c" 'd e' f\\ g "h\\"i" "x\\ty"`)).toEqual(["a", "b c", "d e", "f g", 'h"i', "x\ty"]);
    expect(() => splitWords(`"open`)).toThrow(UnitFileError);
  });

  test("Environment= assignments", () => {
    expect(parseEnvironmentAssignments([`"A=one two" B=3`, `C="x y"`])).toEqual([["A", "one two"], ["B", "3"], ["C", "x y"]]);
    expect(() => parseEnvironmentAssignments(["1BAD=x"])).toThrow(UnitFileError);
  });

  test("environment files as systemd reads them", () => {
    const text = [
      "# comment",
      "; also a comment",
      "A=plain",
      "B = spaced  ",
      `C="double \\"quoted\\" $x"`,
      "D='single $x \\n'",
      "export E=exported",
      "F=multi\\",
      "line",
      "G=",
      "not an assignment",
      "H=a b  c",
    ].join("\n");
    expect(parseEnvironmentFile(text)).toEqual([
      ["A", "plain"],
      ["B", "spaced"],
      ["C", 'double "quoted" $x'],
      ["D", "single $x \\n"],
      ["E", "exported"],
      ["F", "multiline"],
      ["G", ""],
      ["H", "a b  c"],
    ]);
  });
});

describe("command lines", () => {
  test("prefixes and argv0", () => {
    const [c] = parseExec(`-@/bin/sh mysh -c "echo hi"`);
    expect(c).toMatchObject({ words: ["/bin/sh", "-c", "echo hi"], argv0: "mysh", ignoreFailure: true, privileged: false, noExpand: false });
    expect(parseExec("+/bin/true")[0]!.privileged).toBe(true);
    expect(parseExec(":/bin/echo $X")[0]!.noExpand).toBe(true);
  });
  test("a lone ; separates commands", () => {
    expect(parseExec("/bin/echo a ; -/bin/false ; /bin/echo ';'").map((c) => [c.words, c.ignoreFailure])).toEqual([
      [["/bin/echo", "a"], false],
      [["/bin/false"], true],
      [["/bin/echo", ";"], false],
    ]);
  });
  test("$VAR splits, ${VAR} stays one word, $$ is a dollar, : turns it off", () => {
    const env = { A: "one two", B: "x y" };
    expect(expandCommand(parseExec("/bin/echo $A ${B} pre${B}post $$A $UNSET ${UNSET}")[0]!, env)).toEqual(["/bin/echo", "one", "two", "x y", "prex ypost", "$A", ""]);
    expect(expandCommand(parseExec(":/bin/echo $A")[0]!, env)).toEqual(["/bin/echo", "$A"]);
  });
});

describe("names and specifiers", () => {
  test("parse", () => {
    expect(parseUnitName("foo.service")).toMatchObject({ prefix: "foo", instance: undefined, type: "service" });
    expect(parseUnitName("foo@.service")).toMatchObject({ prefix: "foo", instance: "", type: "service" });
    expect(parseUnitName("getty@tty1.service")).toMatchObject({ prefix: "getty", instance: "tty1", type: "service" });
    for (const bad of ["foo", "foo.bogus", ".service", "a b.service", "@x.service"]) expect(() => parseUnitName(bad)).toThrow(UnitFileError);
    expect(instanceName("foo@.service", "bar")).toBe("foo@bar.service");
  });

  test("escaping like systemd-escape", () => {
    expect(escapeString("a/b c")).toBe("a-b\\x20c");
    expect(escapePath("/var/lib/coreos-install/user_data")).toBe("var-lib-coreos\\x2dinstall-user_data");
    expect(escapePath("/")).toBe("-");
    expect(unescapePath("var-lib-coreos\\x2dinstall-user_data")).toBe("/var/lib/coreos-install/user_data");
    expect(unescapeString("a-b\\x20c")).toBe("a/b c");
    expect(escapeString(".hidden")).toBe("\\x2ehidden");
  });

  test("escaping agrees with the real systemd-escape", async () => {
    const strings = ["a/b c", ".hidden", "ü-ber", "x.y_z:1", "-lead", "tab\there", "a..b", "100%"];
    const paths = ["/var/lib/coreos-install/user_data", "/", "//a//b/", "/media/configdrive", "/dev/disk/by-label/config-2"];
    const run = async (args: string[]) => {
      const p = Bun.spawn(["systemd-escape", ...args], { stdout: "pipe" });
      const out = await new Response(p.stdout).text();
      expect(await p.exited).toBe(0);
      return out.replace(/\n$/, "").split(" ");
    };
    expect(await run(["--", ...strings])).toEqual(strings.map(escapeString));
    expect(await run(["--path", "--", ...paths])).toEqual(paths.map(escapePath));
    const escaped = strings.map(escapeString);
    // Unescaped strings may hold spaces, so one call each.
    for (const e of escaped) expect((await run(["--unescape", "--", e])).join(" ")).toBe(unescapeString(e));
    expect(await run(["--unescape", "--path", "--", ...paths.map(escapePath)])).toEqual(paths.map(escapePath).map(unescapePath));
  });

  const name = "user-cloudinit@var-lib-coreos\\x2dinstall-user_data.service";
  const cases: [string, string][] = [
    ["%n", name],
    ["%N", "user-cloudinit@var-lib-coreos\\x2dinstall-user_data"],
    ["%p", "user-cloudinit"],
    ["%P", "user/cloudinit"],
    ["%i", "var-lib-coreos\\x2dinstall-user_data"],
    ["%I", "var/lib/coreos-install/user_data"],
    ["%f", "/var/lib/coreos-install/user_data"],
    ["%j", "cloudinit"],
    ["100%%", "100%"],
    ["--from-file=%f", "--from-file=/var/lib/coreos-install/user_data"],
    ["%H/%m", "host1/abc"],
    ["%t %S", "/run /var/lib"],
  ];
  for (const [v, want] of cases) test(`specifier ${v}`, () => expect(expandSpecifiers(v, name, { hostname: "host1", machineId: "abc" })).toBe(want));
  test("unknown specifier is an error", () => expect(() => expandSpecifiers("%Z", "a.service")).toThrow("unknown specifier %Z"));
  test("plain unit: %i is empty, %N the stem", () => expect(expandSpecifiers("[%i][%N][%p]", "etcd2.service")).toBe("[][etcd2][etcd2]"));
});

describe("search path, templates and drop-ins", () => {
  function tree(files: Record<string, string | { link: string }>): string {
    const root = tempDir("coreos-units-");
    for (const [p, c] of Object.entries(files)) {
      const host = join(root, p);
      mkdirSync(dirname(host), { recursive: true });
      if (typeof c === "string") writeFileSync(host, c);
      else symlinkSync(c.link, host);
    }
    return root;
  }
  const dirs = (root: string) => ({ root, dirs: ["/etc/systemd/system", "/run/systemd/system", "/usr/lib/systemd/system"] });

  test("/etc beats /run beats /usr/lib; a /dev/null link or an empty file masks", () => {
    const root = tree({
      "/usr/lib/systemd/system/a.service": "[Unit]\nDescription=usr\n",
      "/run/systemd/system/a.service": "[Unit]\nDescription=run\n",
      "/usr/lib/systemd/system/b.service": "[Unit]\nDescription=usr\n",
      "/etc/systemd/system/b.service": { link: "/dev/null" },
      "/etc/systemd/system/c.service": { link: "/usr/lib/systemd/system/real.service" },
      "/usr/lib/systemd/system/real.service": "[Unit]\nDescription=real\n",
      "/usr/lib/systemd/system/e.service": "[Unit]\nDescription=usr\n",
      "/run/systemd/system/e.service": "",
    });
    try {
      expect(findFragment(dirs(root), "a.service")).toMatchObject({ state: "found", path: "/run/systemd/system/a.service" });
      expect(findFragment(dirs(root), "b.service")).toMatchObject({ state: "masked" });
      expect(findFragment(dirs(root), "nope.service")).toMatchObject({ state: "not-found" });
      expect(findFragment(dirs(root), "e.service")).toMatchObject({ state: "masked", path: "/run/systemd/system/e.service" });
      // An absolute link target is inside the root, not on the host.
      const c = loadUnit(dirs(root), "c.service");
      expect(c.load === "loaded" && getValue(c.unit, "Unit", "Description")).toBe("real");
    } finally {
      cleanup(root);
    }
  });

  test("drop-ins: same name hides lower precedence, applied in file-name order, template and type dirs included", () => {
    const root = tree({
      "/usr/lib/systemd/system/web@.service": "[Unit]\nDescription=Web %i\n[Service]\nExecStart=/bin/web --name=%i\nEnvironment=A=base\n",
      "/usr/lib/systemd/system/web@.service.d/10-a.conf": "[Service]\nEnvironment=A=usr10\n",
      "/etc/systemd/system/web@.service.d/10-a.conf": "[Service]\nEnvironment=A=etc10\n",
      "/run/systemd/system/web@blue.service.d/20-b.conf": "[Service]\nEnvironment=B=run20\n",
      "/usr/lib/systemd/system/web@blue.service.d/05-first.conf": "[Service]\nEnvironment=A=first\nRestart=always\n",
      "/etc/systemd/system/service.d/00-all.conf": "[Service]\nEnvironment=ALL=1\n",
      "/etc/systemd/system/web@blue.service.d/30-masked.conf": { link: "/dev/null" },
      "/usr/lib/systemd/system/web@blue.service.d/30-masked.conf": "[Service]\nEnvironment=MASKED=1\n",
      "/etc/systemd/system/web@blue.service.d/notes.txt": "ignored",
    });
    try {
      expect(findDropIns(dirs(root), "web@blue.service")).toEqual([
        join(root, "/etc/systemd/system/service.d/00-all.conf"),
        join(root, "/usr/lib/systemd/system/web@blue.service.d/05-first.conf"),
        join(root, "/etc/systemd/system/web@.service.d/10-a.conf"),
        join(root, "/run/systemd/system/web@blue.service.d/20-b.conf"),
      ]);
      const l = loadUnit(dirs(root), "web@blue.service");
      if (l.load !== "loaded") throw new Error(JSON.stringify(l));
      expect(l.path).toBe("/usr/lib/systemd/system/web@.service");
      expect(getValue(l.unit, "Unit", "Description")).toBe("Web blue");
      expect(getList(l.unit, "Service", "ExecStart")).toEqual(["/bin/web --name=blue"]);
      const env = Object.fromEntries(parseEnvironmentAssignments(getList(l.unit, "Service", "Environment")));
      expect(env).toEqual({ A: "etc10", ALL: "1", B: "run20" });
      expect(getValue(l.unit, "Service", "Restart")).toBe("always");
      expect(loadUnit(dirs(root), "web@.service")).toMatchObject({ load: "error" });
    } finally {
      cleanup(root);
    }
  });

  test("dash-prefix drop-in directories apply to every unit under them", () => {
    const root = tree({
      "/etc/systemd/system/foo-bar-baz.service": "[Service]\nExecStart=/bin/true\n",
      "/etc/systemd/system/foo-.service.d/a.conf": "[Service]\nEnvironment=X=foo\n",
      "/etc/systemd/system/foo-bar-.service.d/b.conf": "[Service]\nEnvironment=Y=foobar\n",
    });
    try {
      const l = loadUnit(dirs(root), "foo-bar-baz.service");
      expect(l.load === "loaded" && parseEnvironmentAssignments(getList(l.unit, "Service", "Environment"))).toEqual([["X", "foo"], ["Y", "foobar"]]);
    } finally {
      cleanup(root);
    }
  });
});

describe("service settings", () => {
  const def = (text: string) => serviceFromUnit("x.service", parseUnit(text).unit);
  test("defaults like systemd", () => {
    const d = def("[Service]\nExecStart=/bin/true\n");
    expect(d).toMatchObject({ type: "simple", restart: "no", restartMs: 100, timeoutStartMs: 90_000, timeoutStopMs: 90_000, startLimitBurst: 5, startLimitIntervalMs: 10_000, killSignal: "SIGTERM", remainAfterExit: false });
    expect(def("[Service]\nType=oneshot\nExecStart=/bin/true\n").timeoutStartMs).toBe(Infinity);
  });
  test("settings are read", () => {
    const d = def("[Unit]\nDescription=X\nStartLimitBurst=2\n[Service]\nType=exec\nRestart=on-abnormal\nRestartSec=250ms\nTimeoutSec=7\nTimeoutStopSec=0\nKillSignal=INT\nEnvironmentFile=-/etc/x\nEnvironmentFile=/etc/y\nWorkingDirectory=-/srv\nUser=core\nExecStart=/bin/true\n");
    expect(d).toMatchObject({ description: "X", type: "exec", restart: "on-abnormal", restartMs: 250, timeoutStartMs: 7000, timeoutStopMs: Infinity, killSignal: "SIGINT", startLimitBurst: 2, user: "core" });
    expect(d.environmentFiles).toEqual([{ path: "/etc/x", optional: true }, { path: "/etc/y", optional: false }]);
    expect(d.workingDirectory).toEqual({ path: "/srv", optional: true });
  });
  const bad: [string, string][] = [
    ["[Service]\n", "no ExecStart="],
    ["[Service]\nExecStart=/a\nExecStart=/b\n", "more than one ExecStart="],
    ["[Service]\nType=oneshot\nRestart=always\nExecStart=/a\n", "isn't allowed for Type=oneshot"],
    ["[Service]\nType=bogus\nExecStart=/a\n", "unknown service type"],
    ["[Service]\nType=notify\nExecStart=/a\n", "not supported"],
    ["[Service]\nRestart=sometimes\nExecStart=/a\n", "unknown restart policy"],
    ["[Service]\nRestartSec=soon\nExecStart=/a\n", "not a time span"],
    ["[Service]\nEnvironmentFile=relative\nExecStart=/a\n", "not absolute"],
    ["[Service]\nRemainAfterExit=maybe\nExecStart=/a\n", "not a boolean"],
    ["[Service]\nStandardOutput=socket\nExecStart=/a\n", "not supported by the coreos supervisor"],
    ["[Service]\nKillMode=gentle\nExecStart=/a\n", "unknown kill mode"],
  ];
  for (const [text, msg] of bad) test(`refused: ${msg}`, () => expect(() => def(text)).toThrow(msg));
});

// The cloud-config validator: one test per rule of §6.7 with its exact message and line, the
// classification of user-data, and a seeded fuzz of mutated configs that never crashes and never
// writes anything in validate mode.
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, readConfig } from "../../internal/cloudinit/config.ts";
import { fileSource } from "../../internal/cloudinit/datasource.ts";
import { runCloudinit } from "../../internal/cloudinit/run.ts";
import { classify, formatEntry, isRequestURI, validate } from "../../internal/cloudinit/validate.ts";
import { logger } from "../../internal/log/log.ts";
import { seededRand } from "../../internal/random/random.ts";
import type { UnitManager } from "../../internal/systemd/manager.ts";
import { cleanup, tempDir } from "../helpers/procs.ts";

const FIXTURES = join(import.meta.dir, "../fixtures/cloudinit");
const EXAMPLE = readFileSync(join(FIXTURES, "example.yml"), "utf8");

const lines = (text: string) => validate(text).map(formatEntry);

describe("classification", () => {
  test("empty, script and Ignition user-data have no entries; other text one error at line 1", () => {
    expect(classify("")).toBe("empty");
    expect(classify("#!/bin/bash\necho hi\n")).toBe("script");
    expect(classify('{"ignition":{"version":"3.0.0"}}')).toBe("ignition");
    expect(classify('{"ignitionVersion":1}')).toBe("ignition");
    expect(classify("#cloud-config  \r\nhostname: a\n")).toBe("cloud-config");
    for (const t of ["", "#!/bin/sh\n", '{"ignition":{"version":"2.1.0"}}']) expect(validate(t)).toEqual([]);
    expect(lines("hostname: a\n")).toEqual(['line 1: error: must be "#cloud-config" or begin with "#!"']);
    expect(lines('{"ignition":{}}')).toEqual(['line 1: error: must be "#cloud-config" or begin with "#!"']);
  });

  test("the documentation example only has its three deprecation warnings", () => {
    expect(lines(EXAMPLE)).toEqual([
      'line 75: warning: deprecated key "etcd" (etcd is no longer shipped in Container Linux)',
      'line 79: warning: deprecated key "etcd2" (etcd2 is no longer shipped in Container Linux)',
      'line 91: warning: deprecated key "fleet" (fleet is no longer shipped in Container Linux)',
    ]);
  });
});

describe("rules", () => {
  test("YAML parse failure: the yaml library's message at its line", () => {
    expect(lines("#cloud-config\nhostname: a\nusers:\n  - name: x\n   bad: [\n")).toEqual([expect.stringMatching(/^line [56]: error: \S/)]);
    expect(lines("#cloud-config\nkey: \"unterminated\n")).toEqual([expect.stringMatching(/^line [23]: error: Missing closing "quote/)]);
    expect(lines("#cloud-config\n- a\n- b\n")).toEqual(["line 2: error: cannot unmarshal !!seq into a mapping"]);
  });

  test("unrecognized key, at any depth, with - and _ alike", () => {
    expect(lines("#cloud-config\nhostname: a\nbad: 1\ncoreos:\n  units:\n    - name: a.service\n      nope: true\n  update:\n    reboot-strategy: reboot\n")).toEqual([
      'line 3: warning: unrecognized key "bad"',
      'line 7: warning: unrecognized key "nope"',
    ]);
  });

  test("deprecated keys name their reason", () => {
    expect(lines("#cloud-config\ncoreos:\n  etcd2:\n    ca_file: /x\n  fleet:\n    metadata: a=b\nusers:\n  - name: u\n    coreos-ssh-import-github: u\n")).toEqual([
      'line 3: warning: deprecated key "etcd2" (etcd2 is no longer shipped in Container Linux)',
      'line 4: warning: deprecated key "ca_file" (ca_file obsoleted by trusted_ca_file and client_cert_auth)',
      'line 5: warning: deprecated key "fleet" (fleet is no longer shipped in Container Linux)',
      'line 9: warning: deprecated key "coreos_ssh_import_github" (trying to fetch from a remote endpoint introduces too many intermittent errors)',
    ]);
  });

  test("type mismatch: every kind's name, list items named name[i], compatible coercions accepted", () => {
    const t = [
      "#cloud-config",
      "hostname: 5", // int into string: fine
      "ssh_authorized_keys:",
      "  - ssh-rsa a",
      "  - [nested]",
      "users: {name: x}",
      "write_files: x",
      "manage_etc_hosts: [a]",
      "coreos:",
      "  units:",
      "    - name: a.service",
      "      enable: yes",
      "      runtime: 1",
      "      drop_ins: a",
      "  etcd2:",
      "    heartbeat_interval: 1.5",
      "    election_timeout: 100",
      "  fleet:",
      "    engine_reconcile_interval: 3",
      "    etcd_request_timeout: soon",
      "  oem: rackspace",
      "",
    ].join("\n");
    expect(lines(t)).toEqual([
      'line 5: warning: incorrect type for "ssh_authorized_keys[1]" (want string)',
      'line 6: warning: incorrect type for "users" (want []struct)',
      'line 7: warning: incorrect type for "write_files" (want []struct)',
      'line 8: warning: incorrect type for "manage_etc_hosts" (want string)',
      'line 13: warning: incorrect type for "runtime" (want bool)',
      'line 14: warning: incorrect type for "drop_ins" (want []struct)',
      'line 15: warning: deprecated key "etcd2" (etcd2 is no longer shipped in Container Linux)',
      'line 16: warning: incorrect type for "heartbeat_interval" (want int)',
      'line 18: warning: deprecated key "fleet" (fleet is no longer shipped in Container Linux)',
      'line 20: warning: incorrect type for "etcd_request_timeout" (want float64)',
      'line 21: warning: incorrect type for "oem" (want struct)',
    ]);
    expect(lines("#cloud-config\nusers:\n  - name: a\n    groups: sudo\n")).toEqual(['line 4: warning: incorrect type for "groups" (want []string)']);
  });

  test("value failing its regex: an error naming the value", () => {
    const t = [
      "#cloud-config",
      "coreos:",
      "  units:",
      "    - name: a.service",
      "      command: lol",
      "  update:",
      "    reboot_strategy: sometimes",
      "  locksmith:",
      "    window_start: Someday 4:00",
      "    window_length: forever1",
      "  etcd2:",
      "    proxy: maybe",
      "write_files:",
      "  - path: /etc/a",
      "    permissions: 0999",
      "    encoding: rot13",
      "    content: x",
      "",
    ].join("\n");
    expect(lines(t).filter((l) => !l.includes("deprecated"))).toEqual([
      "line 5: error: invalid value lol",
      "line 7: error: invalid value sometimes",
      "line 9: error: invalid value Someday 4:00",
      "line 10: error: invalid value forever1",
      "line 12: error: invalid value maybe",
      "line 15: error: invalid value 0999",
      "line 16: error: invalid value rot13",
      'line 17: error: content cannot be decoded as "rot13"',
    ]);
    // Valid forms pass: case-insensitive day, 0-padded clock, an octal int, a quoted mode.
    expect(lines("#cloud-config\ncoreos:\n  locksmith:\n    window_start: tHu 04:05\n    window_length: 1h30m\nwrite_files:\n  - path: /a\n    permissions: 0644\n  - path: /b\n    permissions: '755'\n")).toEqual([]);
  });

  test("content that does not decode with its encoding", () => {
    const t = [
      "#cloud-config",
      "write_files:",
      "  - path: /a",
      "    encoding: base64",
      "    content: not base64!",
      "  - path: /b",
      "    encoding: gzip",
      "    content: plain text",
      "  - path: /c",
      "    encoding: gz+b64",
      "    content: aGVsbG8K",
      "  - path: /d",
      "    encoding: b64",
      "    content: aGVsbG8K",
      "",
    ].join("\n");
    expect(lines(t)).toEqual([
      'line 5: error: content cannot be decoded as "base64"',
      'line 8: error: content cannot be decoded as "gzip"',
      'line 11: error: content cannot be decoded as "gz+b64"',
    ]);
  });

  test("a file under /usr is on a read-only filesystem", () => {
    expect(lines("#cloud-config\nwrite_files:\n  - path: /usr/bin/x\n  - path: /usrlocal/x\n  - path: /etc/../usr/share/y\n  - path: usr/lib/z\n")).toEqual([
      "line 3: error: file cannot be written to a read-only filesystem",
      "line 5: error: file cannot be written to a read-only filesystem",
      "line 6: error: file cannot be written to a read-only filesystem",
    ]);
  });

  test("write_files under coreos: info, besides the unknown key", () => {
    expect(lines("#cloud-config\ncoreos:\n  write_files:\n    - path: /a\n")).toEqual([
      'line 3: warning: unrecognized key "write_files"',
      "line 3: info: write_files doesn't belong under coreos",
    ]);
  });

  test("coreos.etcd.discovery must be a URL", () => {
    expect(lines("#cloud-config\ncoreos:\n  etcd:\n    discovery: not a url\n")).toEqual([
      'line 3: warning: deprecated key "etcd" (etcd is no longer shipped in Container Linux)',
      "line 4: warning: discovery URL is not valid",
    ]);
    expect(isRequestURI("https://discovery.etcd.io/abc")).toBe(true);
    expect(isRequestURI("/path")).toBe(true);
    expect(isRequestURI("mailto:x")).toBe(true);
    expect(isRequestURI("http://exa mple.com/")).toBe(false);
    expect(isRequestURI("relative/path")).toBe(false);
    expect(isRequestURI("http://x/%zz")).toBe(false);
  });

  test("an alias bomb is an error, not a hang", () => {
    const levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"];
    for (let i = 1; i < 9; i++) levels.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(10).fill(`*${String.fromCharCode(96 + i)}`).join(", ")}]`);
    const out = lines(`#cloud-config\n${levels.join("\n")}\n`);
    expect(out).toHaveLength(1);
    expect(out[0]).toMatch(/^line \d+: error: the document expands to more than 200000 nodes \(through aliases\)$/);
  });

  test("carriage returns do not move lines", () => {
    expect(lines("#cloud-config\r\nhostname: a\r\nbad: 1\r\n")).toEqual(['line 3: warning: unrecognized key "bad"']);
  });
});

const TOKENS = [": ", "- ", "  ", "\n", "[", "]", "{", "}", '"', "'", "!!binary ", "&a ", "*a", "0644", "yes", "1.5", "~", "#", "|", ">", "\t", "\\$", "$private_ipv4", "encoding: gzip", "path: /usr/x", "\u00ff"];

function mutate(text: string, rnd: () => number): string {
  let t = text;
  const n = 1 + Math.floor(rnd() * 4);
  for (let i = 0; i < n; i++) {
    const at = Math.floor(rnd() * (t.length + 1));
    const ls = t.split("\n");
    switch (Math.floor(rnd() * 6)) {
      case 0:
        t = t.slice(0, at) + t.slice(at + 1 + Math.floor(rnd() * 8));
        break;
      case 1:
        t = t.slice(0, at) + TOKENS[Math.floor(rnd() * TOKENS.length)] + t.slice(at);
        break;
      case 2: {
        const a = Math.floor(rnd() * ls.length);
        const b = Math.floor(rnd() * ls.length);
        [ls[a], ls[b]] = [ls[b]!, ls[a]!];
        t = ls.join("\n");
        break;
      }
      case 3: {
        const a = Math.floor(rnd() * ls.length);
        ls.splice(a, 0, ls[a]!);
        t = ls.join("\n");
        break;
      }
      case 4: {
        const a = Math.floor(rnd() * ls.length);
        ls[a] = rnd() < 0.5 ? ` ${ls[a]}` : ls[a]!.replace(/^ /, "");
        t = ls.join("\n");
        break;
      }
      default:
        t = t.slice(0, at) + String.fromCharCode(Math.floor(rnd() * 128)) + t.slice(at);
    }
  }
  return t;
}

/** A unit manager that fails the test if anything asks it to act. */
const refusing = new Proxy({} as UnitManager, {
  get: (_t, p) => (p === "kind" ? "supervisor" : () => Promise.reject(new Error(`validate mode called the unit manager: ${String(p)}`))),
});

describe("fuzz", () => {
  test("250 seeded mutations of valid configs: the validator and the reader never crash", () => {
    const bases = [EXAMPLE, ...readdirSync(FIXTURES).filter((f) => f.endsWith(".yml") && f !== "example.yml").map((f) => readFileSync(join(FIXTURES, f), "utf8"))];
    const rnd = seededRand(0xc10d);
    for (let i = 0; i < 250; i++) {
      const text = mutate(bases[i % bases.length]!, rnd);
      let entries;
      try {
        entries = validate(text);
      } catch (e) {
        throw new Error(`validate crashed on mutation ${i}: ${(e as Error).stack}\n---\n${text}`);
      }
      for (const e of entries) {
        expect(["error", "warning", "info"]).toContain(e.kind);
        expect(e.line).toBeGreaterThanOrEqual(1);
        expect(e.message.length).toBeGreaterThan(0);
      }
      if (classify(text) === "cloud-config") {
        try {
          readConfig(text);
        } catch (e) {
          if (!(e instanceof ConfigError)) throw new Error(`readConfig crashed on mutation ${i}: ${(e as Error).stack}\n---\n${text}`);
        }
      }
    }
  }, 60_000);

  test("validate mode over mutated configs writes nothing and touches no unit", async () => {
    const rnd = seededRand(7);
    const dir = tempDir("cloudinit-fuzz-");
    const root = join(dir, "root");
    try {
      for (let i = 0; i < 25; i++) {
        const file = join(dir, `cc-${i}.yml`);
        await Bun.write(file, mutate(EXAMPLE, rnd));
        const out: string[] = [];
        const code = await runCloudinit({
          sources: [fileSource(file)],
          budgetMs: 1000,
          validateOnly: true,
          json: i % 2 === 0,
          ignoreFailure: false,
          root,
          offline: true,
          convertNetconf: "",
          workspace: "/var/lib/coreos-cloudinit",
          sshKeyName: "coreos-cloudinit",
          manager: () => refusing,
          env: {},
          log: logger("cloudinit-test"),
          out: (s) => void out.push(s),
        });
        expect([0, 1]).toContain(code);
        if (i % 2 === 0) expect(Array.isArray((JSON.parse(out.join("")) as { result: unknown[] }).result)).toBe(true);
      }
      expect(readdirSync(dir).filter((f) => !f.startsWith("cc-"))).toEqual([]);
    } finally {
      cleanup(dir);
    }
  }, 30_000);
});

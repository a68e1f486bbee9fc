// Applying cloud-config, piece by piece: decoding (Go's yaml v1 rules), substitutions, the
// generated files, unit processing order through a recording unit manager, preflight refusals
// that leave the root untouched, atomic writes, datasource selection.
import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { applyCloudConfig, ApplyError, builtinUnits, processUnits } from "../../internal/cloudinit/apply.ts";
import { ConfigError, goFloat, readConfig, type Unit } from "../../internal/cloudinit/config.ts";
import { fileSource, findCloudConfigURL, selectDatasource, type Datasource } from "../../internal/cloudinit/datasource.ts";
import { decodeContent, DecodeError } from "../../internal/cloudinit/encoding.ts";
import { emptyMetadata, mergeEnvContents, substitute, substitutions } from "../../internal/cloudinit/environment.ts";
import { inRoot, writeFileAtomic } from "../../internal/cloudinit/files.ts";
import { debianNetworkUnits, NetconfError, vmwareNetworkUnits } from "../../internal/cloudinit/netconf.ts";
import { runCloudinit } from "../../internal/cloudinit/run.ts";
import { dropInContents, oemRelease, updateConf } from "../../internal/cloudinit/generated.ts";
import { logger } from "../../internal/log/log.ts";
import type { Placement, UnitCommand, UnitManager, UnitStatus } from "../../internal/systemd/manager.ts";
import { seedRoot, snapshot } from "../fixtures/cloudinit/root.ts";
import { cleanup, tempDir } from "../helpers/procs.ts";

const log = logger("cloudinit-test");
const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

/** Records every call in order; writes nothing. */
class RecordingManager implements UnitManager {
  readonly kind = "supervisor" as const;
  calls: string[] = [];
  async writeUnit(name: string, content: string, where: Placement) {
    this.calls.push(`write ${name} runtime=${where.runtime} ${JSON.stringify(content)}`);
  }
  async writeDropIn(unit: string, dropIn: string, content: string, where: Placement) {
    this.calls.push(`dropin ${unit}/${dropIn} runtime=${where.runtime} ${JSON.stringify(content)}`);
  }
  async mask(name: string, where: Placement) {
    this.calls.push(`mask ${name} runtime=${where.runtime}`);
  }
  async unmask(name: string, where: Placement) {
    this.calls.push(`unmask ${name} runtime=${where.runtime}`);
  }
  async enable(names: readonly string[], where?: Placement) {
    for (const name of names) this.calls.push(`enable ${name} runtime=${where?.runtime ?? false}`);
  }
  async daemonReload() {
    this.calls.push("daemon-reload");
  }
  async run(command: UnitCommand, name: string) {
    this.calls.push(`${command} ${name}`);
  }
  async status(name: string): Promise<UnitStatus> {
    return { name, load: "not-found", active: "inactive", sub: "dead" };
  }
  async journal() {
    return [];
  }
}

describe("decoding", () => {
  test("every encoding; base64 as strict as Go's (padding, only CR/LF ignored)", () => {
    const gz = gzipSync(Buffer.from("zipped\n"));
    expect(dec(decodeContent(enc("plain"), ""))).toBe("plain");
    for (const e of ["b64", "base64"]) expect(dec(decodeContent(enc("aGk=\n"), e))).toBe("hi");
    for (const e of ["gz", "gzip"]) expect(dec(decodeContent(gz, e))).toBe("zipped\n");
    for (const e of ["gz+base64", "gzip+base64", "gz+b64", "gzip+b64"]) expect(dec(decodeContent(enc(gz.toString("base64")), e))).toBe("zipped\n");
    for (const bad of ["aGk", "aG k=", "a===", "!!!!"]) expect(() => decodeContent(enc(bad), "base64")).toThrow(DecodeError);
    expect(() => decodeContent(enc("not gzip"), "gzip")).toThrow(DecodeError);
    expect(() => decodeContent(enc("x"), "rot13")).toThrow('Unsupported encoding "rot13"');
  });

  test("Go's yaml v1 decoding: scalars into strings as written, ints into floats, null as zero, last duplicate wins", () => {
    const cc = readConfig(
      "#cloud-config\nhostname: 0644\nhostname: 007\nmanage_etc_hosts:\nwrite_files:\n  - path: /a\n    permissions: 0600\n    content: 12\ncoreos:\n  fleet:\n    engine_reconcile_interval: 3\n    verbosity: 2\n  etcd2:\n    proxy: off\n    debug: on\n",
    );
    expect(cc.hostname).toBe("007");
    expect(cc.manageEtcHosts).toBe("");
    expect(cc.writeFiles[0]).toMatchObject({ path: "/a", mode: 0o600, content: enc("12") });
    expect(cc.coreos.fleet).toEqual([
      ["FLEET_ENGINE_RECONCILE_INTERVAL", "3"],
      ["FLEET_VERBOSITY", "2"],
    ]);
    expect(cc.coreos.etcd2).toEqual([
      ["ETCD_DEBUG", "true"],
      ["ETCD_PROXY", "off"],
    ]);
  });

  test("what the Go decoder refuses is a ConfigError with its line", () => {
    const bad: [string, RegExp][] = [
      ["#cloud-config\nhostname: [a]\n", /^line 2: cannot unmarshal !!seq into string$/],
      ["#cloud-config\ncoreos:\n  units:\n    - name: a.service\n      enable: 1\n", /^line 5: cannot unmarshal !!int `1` into bool$/],
      ["#cloud-config\ncoreos:\n  fleet:\n    verbosity: high\n", /^line 4: cannot unmarshal !!str `high` into int$/],
      ["#cloud-config\nusers: x\n", /^line 2: cannot unmarshal !!str `x` into slice$/],
      ["#cloud-config\nwrite_files:\n  - path: /a\n    encoding: base64\n    content: '!!'\n", /^line 5: content of \/a cannot be decoded as "base64"/],
      ["#cloud-config\ncoreos:\n  units:\n    - name: a.service\n      command: dance\n", /^line 4: unsupported command "dance"/],
      ["#cloud-config\na: [\n", /^line \d: /],
    ];
    for (const [text, message] of bad) {
      let err: unknown;
      try {
        readConfig(text);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toMatch(message);
    }
  });

  test("float64 values print as Go's %v", () => {
    expect([2.5, 3, 1e6, 123456, 0.0001, 0.00001, 1.5e-7, 1234567.5].map(goFloat)).toEqual(["2.5", "3", "1e+06", "123456", "0.0001", "1e-05", "1.5e-07", "1.2345675e+06"]);
  });
});

describe("substitution and /etc/environment", () => {
  const subs = substitutions({ ...emptyMetadata(), privateIPv4: "10.0.0.5", hostname: "meta" }, { COREOS_PUBLIC_IPV4: "203.0.113.7", COREOS_PRIVATE_IPV4: "ignored" });

  test("metadata first, then COREOS_* variables, else empty; \\$ escapes; every occurrence", () => {
    expect(substitute("a=$private_ipv4$private_ipv4 b=$public_ipv4 c=\\$private_ipv4 d=$public_ipv6 e=$hostname f=$hostname_x", subs)).toBe(
      "a=10.0.0.510.0.0.5 b=203.0.113.7 c=$private_ipv4 d= e=meta f=$hostname_x",
    );
    // A substituted value is not substituted again.
    expect(substitute("$private_ipv4", { ...subs, private_ipv4: "$public_ipv4" })).toBe("$public_ipv4");
  });

  test("merge: the first KEY= line replaced, other lines kept, new keys appended sorted", () => {
    const old = "PATH=/bin\nCOREOS_PUBLIC_IPV4=old\n# note\nCOREOS_PUBLIC_IPV4=second\nno newline";
    expect(mergeEnvContents(old, { COREOS_PUBLIC_IPV4: "1.2.3.4", COREOS_PRIVATE_IPV6: "fd00::1", COREOS_PRIVATE_IPV4: "10.0.0.5" })).toBe(
      "PATH=/bin\nCOREOS_PUBLIC_IPV4=1.2.3.4\n# note\nCOREOS_PUBLIC_IPV4=second\nno newline\nCOREOS_PRIVATE_IPV4=10.0.0.5\nCOREOS_PRIVATE_IPV6=fd00::1\n",
    );
    expect(mergeEnvContents("", {})).toBe("");
  });
});

describe("generated files", () => {
  test("update.conf keeps its lines, replaces keys by prefix, appends the rest sorted", () => {
    expect(updateConf("GROUP=alpha\n# comment\nREBOOT_STRATEGY_OLD=x\n", [["REBOOT_STRATEGY", "off"], ["GROUP", "beta"], ["SERVER", "https://u/"]])).toBe(
      "GROUP=beta\n# comment\nREBOOT_STRATEGY=off\nSERVER=https://u/\n",
    );
    expect(updateConf("", [["GROUP", "stable"]])).toBe("GROUP=stable\n");
  });

  test("drop-ins and oem-release", () => {
    expect(dropInContents([])).toBe("");
    expect(dropInContents([["ETCD_NAME", "a b"], ["ETCD_DEBUG", "true"]])).toBe('[Service]\nEnvironment="ETCD_NAME=a b"\nEnvironment="ETCD_DEBUG=true"\n');
    expect(oemRelease({ id: "x", name: 'Say "hi"', versionId: "1", homeUrl: "", bugReportUrl: "b" })).toBe('ID=x\nVERSION_ID=1\nNAME="Say \\"hi\\""\nHOME_URL=""\nBUG_REPORT_URL="b"\n');
  });

  test("built-in units: env drop-ins (runtime), then locksmith and update-engine commands", () => {
    const cc = readConfig("#cloud-config\ncoreos:\n  locksmith:\n    group: g\n  update:\n    reboot_strategy: 'off'\n    server: s\n");
    expect(builtinUnits(cc).map((u) => [u.name, u.runtime, u.mask, u.command, u.dropIns.map((d) => d.name)])).toEqual([
      ["locksmithd.service", true, false, "", ["20-cloudinit.conf"]],
      ["locksmithd.service", true, true, "stop", []],
      ["update-engine.service", false, false, "restart", []],
    ]);
  });
});

describe("units", () => {
  const unit = (u: Partial<Unit> & { name: string }): Unit => ({ content: "", runtime: false, enable: false, mask: false, command: "", dropIns: [], ...u });

  test("files in list order, the enables batched per placement, one daemon-reload, networkd once, then the commands in order", async () => {
    const m = new RecordingManager();
    await processUnits(
      [
        unit({ name: "a.service", content: "A", command: "start", enable: true }),
        unit({ name: "b.service", dropIns: [{ name: "10-x.conf", content: "X" }, { name: "", content: "skipped" }], command: "restart", runtime: true }),
        unit({ name: "c.service", mask: true, command: "stop" }),
        unit({ name: "", content: "no name" }),
        unit({ name: "eth0.network", content: "N", enable: true, command: "start" }),
        unit({ name: "d.timer", enable: true, runtime: true }),
      ],
      m,
      log,
    );
    expect(m.calls).toEqual([
      'write a.service runtime=false "A"',
      'dropin b.service/10-x.conf runtime=true "X"',
      "unmask b.service runtime=true",
      "mask c.service runtime=false",
      'write eth0.network runtime=false "N"',
      "unmask d.timer runtime=true",
      "enable a.service runtime=false",
      "enable d.timer runtime=true",
      "daemon-reload",
      "restart systemd-networkd.service",
      "start a.service",
      "restart b.service",
      "stop c.service",
    ]);
  });

  test("no daemon-reload when nothing was written", async () => {
    const m = new RecordingManager();
    await processUnits([unit({ name: "a.service", command: "start" })], m, log);
    expect(m.calls).toEqual(["start a.service"]);
  });
});

describe("applying into a root", () => {
  const opts = (root: string, m: UnitManager) => ({ root, sshKeyName: "coreos-cloudinit", metadata: emptyMetadata(), subs: substitutions(emptyMetadata(), {}), manager: m, log });

  test("refusals found before the first write leave the root as it was", async () => {
    const bad: [string, string][] = [
      ["manage_etc_hosts: 127.0.0.1\nhostname: h\n", "Invalid option to manage_etc_hosts"],
      ["hostname: h\nusers:\n  - name: u\n    groups: [nosuch]\n", 'group "nosuch" does not exist'],
      ["hostname: h\nwrite_files:\n  - path: /etc/a\n    owner: nobody:root\n", 'user "nobody" does not exist'],
      ["hostname: h\nwrite_files:\n  - path: /etc/a\n  - path: /usr/lib/b\n", "read-only filesystem"],
      ["hostname: h\nwrite_files:\n  - path: /etc/a\n    owner: core:nogroup\n", 'group "nogroup" does not exist'],
      ["hostname: h\ncoreos:\n  units:\n    - name: nodot\n      content: x\n", 'unit "nodot"'],
      ["hostname: h\ncoreos:\n  units:\n    - name: a.service\n      drop_ins:\n        - name: x.txt\n          content: y\n", "must be a file name ending in .conf"],
    ];
    for (const [body, message] of bad) {
      const root = tempDir("cloudinit-root-");
      try {
        seedRoot(root);
        const before = snapshot(root);
        const m = new RecordingManager();
        const cc = readConfig(`#cloud-config\n${body}`);
        let err: unknown;
        await applyCloudConfig(cc, opts(root, m)).catch((e) => (err = e));
        expect(err).toBeInstanceOf(ApplyError);
        expect((err as Error).message).toContain(message);
        expect(snapshot(root)).toEqual(before);
        expect(m.calls).toEqual([]);
      } finally {
        cleanup(root);
      }
    }
  });

  test("SSH keys for core without a core user are refused up front", async () => {
    const root = tempDir("cloudinit-root-");
    try {
      mkdirSync(join(root, "etc"));
      writeFileSync(join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/bash\n");
      const cc = readConfig("#cloud-config\nhostname: h\nssh_authorized_keys: [ssh-rsa AAAA]\n");
      await expect(applyCloudConfig(cc, opts(root, new RecordingManager()))).rejects.toThrow('user "core" does not exist');
      expect(readdirSync(join(root, "etc"))).toEqual(["passwd"]);
    } finally {
      cleanup(root);
    }
  });

  test("a failed write leaves neither a partial file nor a temp file", () => {
    const dir = tempDir("cloudinit-write-");
    try {
      mkdirSync(join(dir, "target"));
      writeFileSync(join(dir, "target/keep"), "kept");
      expect(() => writeFileAtomic(join(dir, "target"), "new content", 0o644)).toThrow();
      expect(readdirSync(dir)).toEqual(["target"]);
      expect(readFileSync(join(dir, "target/keep"), "utf8")).toBe("kept");
      writeFileSync(join(dir, "file"), "old");
      expect(() => writeFileAtomic(join(dir, "file"), "new", 0o644, { uid: -2, gid: 0 })).toThrow();
      expect(readFileSync(join(dir, "file"), "utf8")).toBe("old");
      expect(readdirSync(dir).sort()).toEqual(["file", "target"]);
      writeFileAtomic(join(dir, "a/b/c"), "deep", 0o640);
      expect(statSync(join(dir, "a/b")).mode & 0o777).toBe(0o755);
      expect(statSync(join(dir, "a/b/c")).mode & 0o777).toBe(0o640);
    } finally {
      cleanup(dir);
    }
  });

  test("links inside the root are followed inside it: absolute targets, .. and loops", async () => {
    const root = tempDir("cloudinit-root-");
    try {
      seedRoot(root);
      mkdirSync(join(root, "var"));
      symlinkSync("/run", join(root, "var/run"));
      symlinkSync("../opt", join(root, "etc/alt"));
      symlinkSync("../../../..", join(root, "up"));
      symlinkSync("loop-b", join(root, "loop-a"));
      symlinkSync("loop-a", join(root, "loop-b"));
      expect(inRoot(root, "/var/run/x")).toBe(join(root, "run/x"));
      expect(inRoot(root, "/etc/alt/y")).toBe(join(root, "opt/y"));
      expect(inRoot(root, "/up/etc/z")).toBe(join(root, "etc/z"));
      expect(inRoot(root, "/var/run")).toBe(join(root, "var/run"));
      expect(inRoot("/", "etc/../etc/hosts")).toBe("/etc/hosts");
      expect(() => inRoot(root, "/loop-a/x")).toThrow("too many levels of symbolic links");
      const marker = `cloudinit-test-${process.pid}`;
      const cc = readConfig(`#cloud-config\nwrite_files:\n  - path: /var/run/${marker}\n    content: inside\n`);
      await applyCloudConfig(cc, opts(root, new RecordingManager()));
      expect(readFileSync(join(root, "run", marker), "utf8")).toBe("inside");
      expect(existsSync(join("/run", marker))).toBe(false);
    } finally {
      cleanup(root);
    }
  });

  test("applying twice gives the same tree, and the same unit calls", async () => {
    const root = tempDir("cloudinit-root-");
    try {
      seedRoot(root);
      const text = readFileSync(join(import.meta.dir, "../fixtures/cloudinit/example.yml"), "utf8");
      const subs = substitutions(emptyMetadata(), { COREOS_PRIVATE_IPV4: "10.1.1.1" });
      const cc = readConfig(substitute(text, subs));
      const m1 = new RecordingManager();
      await applyCloudConfig(cc, { ...opts(root, m1), subs });
      const first = snapshot(root);
      const m2 = new RecordingManager();
      await applyCloudConfig(cc, { ...opts(root, m2), subs });
      expect(snapshot(root)).toEqual(first);
      expect(m2.calls).toEqual(m1.calls);
      expect(existsSync(join(root, "home/elroy"))).toBe(true);
    } finally {
      cleanup(root);
    }
  }, 30_000);
});

describe("--convert-netconf debian", () => {
  const INTERFACES = `# a bonded pair with a VLAN on top
auto lo
iface lo inet loopback

auto eth0
iface eth0 inet manual
    bond-master bond0
iface eth1 inet manual
    bond-master bond0

auto bond0
iface bond0 inet static
    bond-slaves eth0 eth1
    bond-mode 4
    bond-miimon 100
    bond-lacp-rate 1
    address 10.0.0.5
    netmask 255.255.255.0
    gateway 10.0.0.1
    dns-nameservers 8.8.8.8 \\
      8.8.4.4
    post-up route add -net 10.128.0.0 netmask 255.192.0.0 gw 10.0.0.2
    post-up route add -net 172.16.0.0/12 gw 10.0.0.3

iface bond0.101 inet static
    vlan-raw-device bond0
    address 192.168.1.5
    netmask 255.255.255.0

iface eth2 inet dhcp
    hwaddress ether 52:54:00:12:34:56
`;

  test("physical, bond and VLAN interfaces become networkd units, parents after what they carry", () => {
    const units = debianNetworkUnits(INTERFACES);
    expect(units.map((u) => [u.name, u.runtime])).toEqual([
      ["01-bond0.netdev", true],
      ["01-bond0.network", true],
      ["00-bond0.101.netdev", true],
      ["00-bond0.101.network", true],
      ["02-eth0.network", true],
      ["02-eth1.network", true],
      ["00-eth2.network", true],
    ]);
    const c = Object.fromEntries(units.map((u) => [u.name, u.content]));
    expect(c["01-bond0.netdev"]).toBe("[NetDev]\nKind=bond\nName=bond0\n\n[Bond]\nlacp-rate=1\nmiimon=100\nmode=4\n");
    expect(c["01-bond0.network"]).toBe(
      "[Match]\nName=bond0\n\n[Network]\nVLAN=bond0.101\nDNS=8.8.8.8\nDNS=8.8.4.4\n\n[Address]\nAddress=10.0.0.5/24\n\n[Route]\nDestination=0.0.0.0/0\nGateway=10.0.0.1\n\n[Route]\nDestination=10.128.0.0/10\nGateway=10.0.0.2\n\n[Route]\nDestination=172.16.0.0/12\nGateway=10.0.0.3\n",
    );
    expect(c["00-bond0.101.netdev"]).toBe("[NetDev]\nKind=vlan\nName=bond0.101\n\n[VLAN]\nId=101\n");
    expect(c["00-bond0.101.network"]).toBe("[Match]\nName=bond0.101\n\n[Network]\n\n[Address]\nAddress=192.168.1.5/24\n");
    expect(c["02-eth0.network"]).toBe("[Match]\nName=eth0\n\n[Network]\nBond=bond0\n");
    expect(c["00-eth2.network"]).toBe("[Match]\nName=eth2\n\n[Network]\nDHCP=true\nKeepConfiguration=dhcp-on-stop\nIPv6AcceptRA=true\n");
  });

  test("malformed files are refused with the original's messages", () => {
    for (const [text, message] of [
      ["address 1.2.3.4\n", 'missing stanza start "address 1.2.3.4"'],
      ["iface eth0 inet static\n address 10.0.0.1\n", 'malformed static network config for "eth0"'],
      ["iface eth0 inet bogus\n", 'invalid config method "bogus"'],
      ["iface eth0 inet\n", "incorrect number of attributes"],
      ["iface vlanx inet manual\n vlan_raw_device eth0\n", 'malformed vlan name "vlanx"'],
      ["iface eth0 inet dhcp\n hwaddress ether zz:zz\n", 'malformed hwaddress option for "eth0"'],
    ]) {
      expect(() => debianNetworkUnits(text!)).toThrow(message);
    }
    expect(() => debianNetworkUnits("iface eth0 inet dhcp\n")).not.toThrow(NetconfError);
  });
});

describe("--convert-netconf vmware", () => {
  test("interfaces by name or MAC; static beats DHCP; routes normalised to their network; DNS and domains", () => {
    const units = vmwareNetworkUnits({
      "dns.server.0": "10.0.0.2",
      "dns.server.1": "10.0.0.3",
      "dns.domain.0": "example.com",
      "interface.0.name": "ens192",
      "interface.0.dhcp": "yes",
      "interface.0.ip.0.address": "10.0.0.5/24",
      "interface.0.route.0.gateway": "10.0.0.1",
      "interface.0.route.0.destination": "192.168.7.9/16",
      "interface.1.mac": "00:50:56:00:00:01",
      "interface.1.dhcp": "yes",
      "interface.3.name": "unreached",
    });
    expect(units.map((u) => u.name)).toEqual(["00-ens192.network", "00-00:50:56:00:00:01.network"]);
    expect(units[0]!.content).toBe(
      "[Match]\nName=ens192\n\n[Network]\nDomains=example.com\nDNS=10.0.0.2\nDNS=10.0.0.3\n\n[Address]\nAddress=10.0.0.5/24\n\n[Route]\nDestination=192.168.0.0/16\nGateway=10.0.0.1\n",
    );
    expect(units[1]!.content).toBe("[Match]\nMACAddress=00:50:56:00:00:01\n\n[Network]\nDHCP=true\nKeepConfiguration=dhcp-on-stop\nIPv6AcceptRA=true\n");
    for (const [values, message] of [
      [{ "interface.0.dhcp": "maybe" }, 'invalid DHCP option: "maybe"'],
      [{ "interface.0.ip.0.address": "10.0.0.5" }, 'invalid address: "10.0.0.5"'],
      [{ "interface.0.route.0.gateway": "10.0.0.1" }, "missing destination key"],
      [{ "interface.0.mac": "nope", "interface.0.dhcp": "yes" }, "error while parsing MAC address"],
      [{ "dns.server.0": "dns.example" }, 'invalid nameserver: "dns.example"'],
    ] as [Record<string, string>, string][]) {
      expect(() => vmwareNetworkUnits(values)).toThrow(message);
    }
  });
});

describe("script user-data on a running host", () => {
  test("saved 0744 in the workspace, run once as a unit through the manager, its name kept", async () => {
    const ws = tempDir("cloudinit-ws-");
    const script = join(ws, "user-data");
    try {
      writeFileSync(script, "#!/bin/bash\necho $private_ipv4\n");
      const m = new RecordingManager();
      const code = await runCloudinit({
        sources: [fileSource(script)],
        budgetMs: 1000,
        validateOnly: false,
        json: false,
        ignoreFailure: false,
        root: "/",
        offline: false,
        convertNetconf: "",
        workspace: join(ws, "var"),
        sshKeyName: "coreos-cloudinit",
        manager: () => m,
        env: { COREOS_PRIVATE_IPV4: "10.2.3.4" },
        log,
        out: () => undefined,
      });
      expect(code).toBe(0);
      const saved = readdirSync(join(ws, "var/scripts")).filter((f) => f !== "unit-name");
      expect(saved).toHaveLength(1);
      const path = join(ws, "var/scripts", saved[0]!);
      expect(readFileSync(path, "utf8")).toBe("#!/bin/bash\necho 10.2.3.4\n");
      expect(statSync(path).mode & 0o777).toBe(0o744);
      const unit = `coreos-cloudinit-${saved[0]}.service`;
      expect(readFileSync(join(ws, "var/scripts/unit-name"), "utf8")).toBe(unit);
      expect(m.calls).toEqual([
        `write ${unit} runtime=true ${JSON.stringify(`[Unit]\nDescription=Unit generated and executed by coreos-cloudinit on behalf of user\n\n[Service]\nType=oneshot\nExecStart=/bin/bash ${path}\n`)}`,
        "daemon-reload",
        `start ${unit}`,
      ]);
    } finally {
      cleanup(ws);
    }
  });
});

describe("user-data that fails to arrive whole", () => {
  test("corrupt gzip: a failure (exit 1, or 0 with ignore-failure) that applies no user-data", async () => {
    const dir = tempDir("cloudinit-gz-");
    try {
      const file = join(dir, "user-data");
      writeFileSync(file, Buffer.concat([gzipSync(Buffer.from("#cloud-config\nhostname: x\n")).subarray(0, 12)]));
      const m = new RecordingManager();
      const base = {
        sources: [fileSource(file)],
        budgetMs: 1000,
        validateOnly: false,
        json: false,
        root: join(dir, "root"),
        offline: true,
        convertNetconf: "" as const,
        workspace: "/var/lib/coreos-cloudinit",
        sshKeyName: "coreos-cloudinit",
        manager: () => m,
        env: {},
        log,
        out: () => undefined,
      };
      mkdirSync(base.root);
      expect(await runCloudinit({ ...base, ignoreFailure: false })).toBe(1);
      expect(await runCloudinit({ ...base, ignoreFailure: true })).toBe(0);
      expect(readdirSync(base.root)).toEqual([]);
      expect(m.calls).toEqual([]);
    } finally {
      cleanup(dir);
    }
  });
});

describe("datasources", () => {
  test("cloud-config-url on the kernel command line: either spelling, the last wins, a bare key is ignored", () => {
    expect(findCloudConfigURL("ro root=/dev/sda cloud-config-url=http://a/1 cloud_config_url=http://b/2 cloud-config-url\n")).toBe("http://b/2");
    expect(findCloudConfigURL("ro quiet")).toBeUndefined();
  });

  const source = (type: string, availableAfter: number, changes = true): Datasource & { checks: number } => {
    const s = {
      type,
      availabilityChanges: changes,
      checks: 0,
      isAvailable: async () => ++s.checks > availableAfter,
      fetchMetadata: async () => emptyMetadata(),
      fetchUserdata: async () => new Uint8Array(),
    };
    return s;
  };

  test("the first to become available wins; one that cannot change is asked once; the budget ends the wait", async () => {
    const never = source("never", Infinity, false);
    const late = source("late", 2);
    const later = source("later", 50);
    expect((await selectDatasource([never, late, later], 10_000))?.type).toBe("late");
    expect(never.checks).toBe(1);
    const t0 = Date.now();
    expect(await selectDatasource([source("slow", Infinity)], 250)).toBeNull();
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(await selectDatasource([source("gone", Infinity, false)], 60_000)).toBeNull();
  });
});

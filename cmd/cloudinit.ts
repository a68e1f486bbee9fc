// coreos cloudinit (coreos-cloudinit): its flags, single or double dash, plus --root DIR to apply
// into an offline tree, and `validate FILE...`. Everything else is in internal/cloudinit.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import pkg from "../package.json" with { type: "json" };
import { parseGoDuration } from "../internal/ctl/goflag.ts";
import { FlagError, parseFlags, usage, type FlagDef } from "../internal/flags/flags.ts";
import { logger } from "../internal/log/log.ts";
import type { UnitManager } from "../internal/systemd/manager.ts";
import type { Datasource } from "../internal/cloudinit/datasource.ts";

// The YAML parser, the datasources and the unit layer are loaded once the flags ask for them, so
// --version and --help start as fast as the binary can.
const validation = () => Promise.all([import("../internal/cloudinit/run.ts"), import("../internal/cloudinit/validate.ts")]);

const s = (d: string, description: string) => ({ kind: "string" as const, default: d, description }) satisfies FlagDef;
const b = (description: string) => ({ kind: "bool" as const, default: false, description }) satisfies FlagDef;

const FLAGS = {
  "from-file": s("", "Read user-data from provided file"),
  "from-url": s("", "Download user-data from provided url"),
  "from-configdrive": s("", "Read data from provided cloud-drive directory"),
  "from-ec2-metadata": s("", "Download EC2 data from the provided url"),
  "from-metadata-service": b("[DEPRECATED - Use -from-ec2-metadata] Download data from metadata service"),
  "from-gce-metadata": s("", "Download GCE data from the provided url"),
  "from-digitalocean-metadata": s("", "Download DigitalOcean data from the provided url"),
  "from-packet-metadata": s("", "Download Packet data from metadata service"),
  "from-waagent": s("", "Read data from provided waagent directory"),
  "from-cloudsigma-metadata": b("Download data from CloudSigma server context"),
  "cloudsigma-serial": s("/dev/ttyS1", "The serial port of CloudSigma's server context (naming it skips the DMI check)"),
  "from-vmware-guestinfo": b("Read data from VMware guestinfo (through open-vm-tools' vmware-rpctool)"),
  "from-vmware-ovf-env": s("", "Read data from OVF Environment"),
  "from-proc-cmdline": b("Parse /proc/cmdline for 'cloud-config-url=<url>', using the cloud-config served by an HTTP GET to <url>"),
  oem: s("", "Use the settings specific to the provided OEM"),
  "convert-netconf": s("", "Read the network config provided in cloud-drive and translate it from the specified format into networkd unit files (debian, packet or vmware)"),
  workspace: s("/var/lib/coreos-cloudinit", "Base directory coreos-cloudinit should use to store data"),
  "ssh-key-name": s("coreos-cloudinit", "Add SSH keys to the system with the given name"),
  validate: b("[EXPERIMENTAL] Validate the user-data but do not apply it to the system"),
  "ignore-failure": b("Exits with 0 status in the event of malformed input from user-data"),
  version: b("Print the version and exit"),
  root: s("/", "Apply everything inside this directory instead of / (an image being built: unit commands and script user-data are not run there, unless --unit-socket names the supervisor serving it)"),
  "unit-socket": s("", "Send unit commands to coreos's supervisor at this control socket instead of picking systemd or the supervisor by what runs"),
  json: b("Print validation entries as JSON ({\"result\":[...]})"),
  "datasource-timeout": s("5m", "How long to wait for a datasource to become available"),
  "proc-cmdline": s("/proc/cmdline", "The kernel command line read by --from-proc-cmdline"),
};

const OEMS: Record<string, Record<string, string>> = {
  digitalocean: { "from-digitalocean-metadata": "http://169.254.169.254/" },
  "ec2-compat": { "from-ec2-metadata": "http://169.254.169.254/", "from-configdrive": "/media/configdrive" },
  gce: { "from-gce-metadata": "http://metadata.google.internal/" },
  "rackspace-onmetal": { "from-configdrive": "/media/configdrive", "convert-netconf": "debian" },
  azure: { "from-waagent": "/var/lib/waagent" },
  cloudsigma: { "from-cloudsigma-metadata": "true" },
  packet: { "from-packet-metadata": "https://metadata.packet.net/" },
  vmware: { "from-vmware-guestinfo": "true", "convert-netconf": "vmware" },
};

const PROVIDE =
  "Provide at least one of --from-file, --from-configdrive, --from-ec2-metadata, --from-gce-metadata, --from-cloudsigma-metadata, --from-packet-metadata, --from-digitalocean-metadata, --from-vmware-guestinfo, --from-waagent, --from-url or --from-proc-cmdline";

const HELP = `Usage: coreos-cloudinit [flags]
       coreos cloudinit validate [--json] FILE...

Configures this machine (or, with --root, an offline tree) from cloud-config user-data.

${usage(FLAGS, "CLOUDINIT")}
`;

const log = logger("cloudinit");
const env = process.env as Record<string, string | undefined>;

async function validateFiles(files: string[], json: boolean): Promise<number> {
  const [{ gunzipIfGzip, printEntries }, { formatEntry, validate }] = await validation();
  if (files.length === 0) {
    process.stderr.write("coreos cloudinit validate: no files given (usage: coreos cloudinit validate [--json] FILE...)\n");
    return 2;
  }
  let code = 0;
  for (const f of files) {
    let text: string;
    try {
      text = new TextDecoder().decode(gunzipIfGzip(readFileSync(f)));
    } catch (e) {
      process.stderr.write(`coreos cloudinit validate: ${f}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}\n`);
      code = 1;
      continue;
    }
    const entries = validate(text);
    if (entries.length > 0) code = 1;
    if (json) {
      const result = entries.map((e) => ({ kind: e.kind, message: e.message, line: e.line }));
      process.stdout.write(`${JSON.stringify(files.length === 1 ? { result } : { file: f, result })}\n`);
    } else if (files.length === 1) printEntries(entries, false, (x) => void process.stdout.write(x));
    else for (const e of entries) process.stdout.write(`${f}: ${formatEntry(e)}\n`);
  }
  return code;
}

export async function runCloudinit(args: string[]): Promise<number> {
  let p;
  try {
    p = parseFlags(FLAGS, args, env, "CLOUDINIT");
  } catch (e) {
    if (!(e instanceof FlagError)) throw e;
    process.stderr.write(`coreos-cloudinit: ${e.message}\n`);
    return 2;
  }
  const v = p.values;
  if (p.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (p.positionals[0] === "validate") return validateFiles(p.positionals.slice(1), v.json);
  if (p.positionals.length > 0) {
    process.stderr.write(`coreos-cloudinit: unexpected argument "${p.positionals[0]}" (try: coreos-cloudinit --help)\n`);
    return 2;
  }
  if (v.oem !== "") {
    const preset = OEMS[v.oem];
    if (!preset) {
      process.stderr.write(`Invalid option to -oem: "${v.oem}". Supported options: ${JSON.stringify(Object.keys(OEMS))}\n`);
      return 2;
    }
    const values = v as Record<string, string | boolean>;
    for (const [k, val] of Object.entries(preset)) values[k] = typeof values[k] === "boolean" ? val === "true" : val;
  }
  if (v.version) {
    process.stdout.write(`coreos-cloudinit ${pkg.version}\n`);
    return 0;
  }
  if (v["convert-netconf"] !== "" && !["debian", "packet", "vmware"].includes(v["convert-netconf"])) {
    process.stderr.write(`Invalid option to -convert-netconf: '${v["convert-netconf"]}'. Supported options: 'debian, packet, vmware'\n`);
    return 2;
  }
  const budgetMs = parseGoDuration(v["datasource-timeout"]);
  if (typeof budgetMs === "string" || budgetMs <= 0) {
    process.stderr.write(`coreos-cloudinit: invalid value "${v["datasource-timeout"]}" for flag -datasource-timeout: parse error\n`);
    return 2;
  }

  const ds = {
    ...(await import("../internal/cloudinit/datasource.ts")),
    ...(await import("../internal/cloudinit/metadata.ts")),
    ...(await import("../internal/cloudinit/vmware.ts")),
    ...(await import("../internal/cloudinit/cloudsigma.ts")),
  };
  const { runCloudinit: run } = await import("../internal/cloudinit/run.ts");
  const { pickManager } = await import("../internal/systemd/pick.ts");
  const { SupervisorClient } = await import("../internal/systemd/client.ts");
  const sources: Datasource[] = [];
  if (v["from-file"]) sources.push(ds.fileSource(v["from-file"]));
  if (v["from-url"]) sources.push(ds.urlSource(v["from-url"]));
  if (v["from-configdrive"]) sources.push(ds.configDriveSource(v["from-configdrive"]));
  if (v["from-metadata-service"]) sources.push(ds.ec2Source("http://169.254.169.254/"));
  if (v["from-ec2-metadata"]) sources.push(ds.ec2Source(v["from-ec2-metadata"]));
  if (v["from-gce-metadata"]) sources.push(ds.gceSource(v["from-gce-metadata"]));
  if (v["from-digitalocean-metadata"]) sources.push(ds.digitalOceanSource(v["from-digitalocean-metadata"]));
  if (v["from-waagent"]) sources.push(ds.waagentSource(v["from-waagent"]));
  if (v["from-packet-metadata"]) sources.push(ds.packetSource(v["from-packet-metadata"]));
  if (v["from-proc-cmdline"]) sources.push(ds.procCmdlineSource(v["proc-cmdline"]));
  if (v["from-vmware-guestinfo"]) sources.push(ds.guestinfoSource());
  if (v["from-cloudsigma-metadata"]) sources.push(ds.cloudSigmaSource(v["cloudsigma-serial"], p.given.has("cloudsigma-serial")));
  if (v["from-vmware-ovf-env"]) sources.push(ds.ovfEnvSource(v["from-vmware-ovf-env"]));
  if (sources.length === 0) {
    process.stderr.write(`${PROVIDE}\n\n${HELP}`);
    return 2;
  }

  // useradd --root and systemctl --root want an absolute directory.
  const root = v.root === "" || v.root === "/" ? "/" : resolve(v.root);
  let manager: UnitManager | undefined;
  return run({
    sources,
    budgetMs,
    validateOnly: v.validate,
    json: v.json,
    ignoreFailure: v["ignore-failure"],
    root,
    // An offline root has nothing running in it, unless a supervisor serves it.
    offline: root !== "/" && v["unit-socket"] === "",
    convertNetconf: v["convert-netconf"] as "" | "debian" | "packet" | "vmware",
    workspace: v.workspace,
    sshKeyName: v["ssh-key-name"],
    manager: () => (manager ??= v["unit-socket"] !== "" ? new SupervisorClient({ socket: v["unit-socket"], root }) : pickManager({ root })),
    env,
    log,
    out: (x) => void process.stdout.write(x),
  });
}

// coreos update-engine daemon (`update_engine`): flags, then internal/update's Engine with the
// control socket (and optionally TCP) and com.coreos.update1 on the system bus when there is one.
import { join } from "node:path";
import pkg from "../../package.json" with { type: "json" };
import { parseGoDuration } from "../../internal/ctl/goflag.ts";
import { serveUpdate1, type Update1Server } from "../../internal/dbus/update1.ts";
import { FlagError, parseFlags, usage, type FlagDef } from "../../internal/flags/flags.ts";
import * as gpt from "../../internal/gpt/index.ts";
import { log, logger } from "../../internal/log/log.ts";
import { downloadAndApply } from "../../internal/payload/index.ts";
import { ConfigError, defaultPaths, loadHostConfig } from "../../internal/update/conf.ts";
import { Engine, type UsrSelector } from "../../internal/update/engine.ts";
import { seededRand } from "../../internal/random/random.ts";
import { socketPath, StatusServer } from "../../internal/update/status.ts";

const s = (d: string, description: string): FlagDef => ({ kind: "string", default: d, description });
const b = (d: boolean, description: string): FlagDef => ({ kind: "bool", default: d, description });

const FLAGS = {
  "root-dir": s("/", "root of every file the engine reads and writes (update.conf, release, machine-id, prefs, markers, key)"),
  "prefs-dir": s("", "prefs directory (default <root>/var/lib/update_engine/prefs)"),
  "public-key": s("", "payload public key, PEM (default <root>/usr/share/update_engine/update-payload-key.pub.pem)"),
  disk: s("", "the boot disk (device or image file; default: the disk under /usr)"),
  "usr-partition": s("", "the running USR partition: number or PARTUUID (default: mount.usr= of /proc/cmdline, else the partition under /usr)"),
  "control-socket": s("", "control socket (default $UPDATE_ENGINE_CONTROL_SOCKET or /run/update-engine/control.sock)"),
  "listen-tcp": s("", "also serve the control protocol on HOST:PORT"),
  dbus: b(true, "serve com.coreos.update1 on the system bus when there is one"),
  "interval-scale": s("1", "multiply every check interval by this factor (e.g. 0.001 in tests)"),
  "mark-good-delay": s("45s", "mark the running USR partition good this long after start"),
  "oem-postinst": s("", "the OEM post-install hook run before the switch (default <root>/oem/bin/oem-postinst, else <root>/usr/share/oem/bin/oem-postinst)"),
  seed: s("", "seed of the scheduling jitter (default: random)"),
  foreground: b(true, "accepted for update-engine.service's ExecStart (the daemon always runs in the foreground)"),
  logtostderr: b(true, "accepted for update-engine.service's ExecStart (logs always go to stderr)"),
  debug: b(false, "debug logging"),
  version: b(false, "print the version and exit"),
};

const env = process.env as Record<string, string | undefined>;

function duration(name: string, raw: string): number {
  const ms = parseGoDuration(raw);
  if (typeof ms === "string" || ms < 0) throw new FlagError(`invalid value "${raw}" for flag -${name}: parse error`);
  return ms;
}

function usrSelector(raw: string): UsrSelector {
  if (/^[0-9]+$/.test(raw)) return { number: Number(raw) };
  if (/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/.test(raw)) return { partuuid: raw.toUpperCase() };
  throw new FlagError(`invalid value "${raw}" for flag -usr-partition: want a partition number or a PARTUUID`);
}

/** Disk and running USR partition: the flags, else what the host shows (gpt's rule, shared with `disk mark-good`). */
function locateUsr(diskFlag: string, usrFlag: string): { disk: string | null; usr: UsrSelector | null } {
  const usr = usrFlag ? usrSelector(usrFlag) : null;
  if (diskFlag && usr) return { disk: diskFlag, usr };
  try {
    const r = gpt.findRunningUsr(diskFlag ? { disk: diskFlag } : {});
    return { disk: r.disk, usr: usr ?? { number: r.number } };
  } catch (e) {
    logger("update_engine").warn(`the running USR partition is unknown: ${(e as Error).message}`);
    return { disk: diskFlag || null, usr };
  }
}

/** Where flatcar-postinst looks: /usr/share/oem is /oem on newer images, and the only one on older ones. */
function oemPostinstPaths(root: string): string[] {
  return ["/oem/bin/oem-postinst", "/usr/share/oem/bin/oem-postinst"].map((p) => join(root, p));
}

async function daemon(args: string[]): Promise<number> {
  const p = parseFlags(FLAGS, args, env, "UPDATE_ENGINE");
  const v = p.values;
  if (p.help) {
    process.stdout.write(`Usage: update_engine [flags]\n\n${usage(FLAGS, "UPDATE_ENGINE")}\n`);
    return 0;
  }
  if (v.version) {
    process.stdout.write(`update_engine version ${pkg.version}\n`);
    return 0;
  }
  if (v.debug) log.level = 4;
  const scale = Number(v["interval-scale"]);
  if (v["interval-scale"] === "" || !Number.isFinite(scale) || scale <= 0) {
    throw new FlagError(`invalid value "${v["interval-scale"]}" for flag -interval-scale: want a positive number`);
  }
  const markGoodDelayMs = duration("mark-good-delay", v["mark-good-delay"]);
  if (v.seed !== "" && !/^[0-9]+$/.test(v.seed)) throw new FlagError(`invalid value "${v.seed}" for flag -seed: parse error`);
  const paths = defaultPaths(v["root-dir"]);
  if (v["prefs-dir"]) paths.prefsDir = v["prefs-dir"];
  if (v["public-key"]) paths.publicKey = v["public-key"];
  let tcp: { host: string; port: number } | null = null;
  if (v["listen-tcp"]) {
    const a = v["listen-tcp"];
    const i = a.lastIndexOf(":");
    const port = Number(a.slice(i + 1));
    if (i <= 0 || !Number.isInteger(port) || port < 0 || port > 65535) throw new FlagError(`invalid value "${a}" for flag -listen-tcp: want HOST:PORT`);
    tcp = { host: a.slice(0, i).replace(/^\[|\]$/g, ""), port };
  }
  const { disk, usr } = locateUsr(v.disk, v["usr-partition"]);

  let host;
  try {
    host = loadHostConfig(paths);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`update_engine: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
  const engine = new Engine({
    host,
    paths,
    disk,
    usr,
    install: downloadAndApply,
    rand: v.seed === "" ? Math.random : seededRand(Number(v.seed)),
    intervalScale: scale,
    markGoodDelayMs,
    periodicChecks: !host.devMode,
    oemPostinst: v["oem-postinst"] ? [v["oem-postinst"]] : oemPostinstPaths(v["root-dir"]),
  });
  const sockPath = socketPath(v["control-socket"], env);
  const control = new StatusServer(sockPath, engine.status, {
    attemptUpdate: () => engine.attemptUpdate(),
    resetStatus: () => engine.resetStatus(),
  });
  try {
    await control.start();
  } catch (e) {
    process.stderr.write(`update_engine: ${(e as Error).message}\n`);
    return 1;
  }
  const ulog = logger("update_engine");
  ulog.info(`control socket ${sockPath}`);
  if (tcp) {
    try {
      const port = await control.listenTcp(tcp.host, tcp.port);
      ulog.info(`control protocol on tcp://${tcp.host}:${port}`);
    } catch (e) {
      await control.close();
      process.stderr.write(`update_engine: -listen-tcp ${v["listen-tcp"]}: ${(e as Error).message}\n`);
      return 1;
    }
  }
  let bus: Update1Server | null = null;
  if (v.dbus) {
    try {
      bus = await serveUpdate1({ getStatus: () => engine.status, attemptUpdate: () => engine.attemptUpdate(), resetStatus: () => engine.resetStatus() }, env);
      if (bus) ulog.info("serving com.coreos.update1 on the system bus");
    } catch (e) {
      ulog.warn(`not on the system bus: ${(e as Error).message}`);
    }
  }
  engine.onStatus((st) => {
    control.setStatus(st);
    bus?.emit(st);
  });
  engine.start();
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  ulog.info("stopping");
  await engine.stop();
  await bus?.close();
  await control.close();
  return 0;
}

export async function run(args: string[]): Promise<number> {
  try {
    return await daemon(args);
  } catch (e) {
    if (e instanceof FlagError) {
      process.stderr.write(`${e.message}\n`);
      return 2;
    }
    process.stderr.write(`update_engine: ${(e as Error).message}\n`);
    return 1;
  }
}

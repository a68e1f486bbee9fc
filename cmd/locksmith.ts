// coreos locksmith: locksmithctl verbs (status, lock, unlock, set-max, reboot, send-need-reboot),
// the daemon (`daemon`, or the `locksmithd` program name) and the FleetLock endpoint (`fleetlock`).
// Flags here; everything else in internal/locksmith.
import { readFileSync } from "node:fs";
import pkg from "../package.json" with { type: "json" };
import { parseGoDuration } from "../internal/ctl/goflag.ts";
import { FlagError, parseFlags, usage, type FlagDef } from "../internal/flags/flags.ts";
import { log } from "../internal/log/log.ts";
import { DEFAULT_ENDPOINTS, openLock, type ConnectOptions } from "../internal/locksmith/client.ts";
import { runCtlCommand } from "../internal/locksmith/ctl.ts";
import { runDaemon } from "../internal/locksmith/daemon.ts";
import { fleetLockApp } from "../internal/locksmith/fleetlock.ts";
import { systemBus } from "../internal/dbus/bus.ts";
import { COORDINATOR_FILE, CoordinatorFile, MACHINE_ID_FILE, machineId, reboot, wall } from "../internal/locksmith/host.ts";
import { strategyFrom, UPDATE_CONF_FILES } from "../internal/locksmith/strategy.ts";
import { updateStatuses } from "../internal/locksmith/updates.ts";
import { windowFromEnv } from "../internal/locksmith/window.ts";
import { socketPath } from "../internal/update/status.ts";

const s = (d: string, description: string): FlagDef => ({ kind: "string", default: d, description });
const b = (description: string): FlagDef => ({ kind: "bool", default: false, description });

const GLOBAL = {
  endpoint: s(DEFAULT_ENDPOINTS, "etcd endpoints (comma list; a repeated flag keeps the last)"),
  "etcd-cafile": s("", "etcd CA file"),
  "etcd-certfile": s("", "etcd client certificate file"),
  "etcd-keyfile": s("", "etcd client key file"),
  "etcd-username": s("", "etcd basic auth user"),
  "etcd-password": s("", "etcd basic auth password"),
  group: s("", "reboot lock group"),
  debug: b("debug logging"),
  version: b("print the version and exit"),
  "update-socket": s("", "the update engine's control socket, used where there is no system bus (default $UPDATE_ENGINE_CONTROL_SOCKET or /run/update-engine/control.sock)"),
  "reboot-command": s("", "run by /bin/sh to reboot instead of login1/systemctl"),
  "host-root": s("/", "root under which /run/systemd/system marks a systemd host (reboot through login1)"),
};

const DAEMON = {
  ...GLOBAL,
  "machine-id": s("", `this machine's id (default: the contents of ${MACHINE_ID_FILE})`),
  "state-file": s(COORDINATOR_FILE, "coordinator state file"),
  "lock-ttl": s("0", "drop holders that have not renewed within this duration (0 = never, as the original)"),
  max: s("", "set the semaphore's max at start (cloud-config coreos.locksmith.max)"),
  "unlock-delay": s("5s", "wait after start before releasing this machine's lock"),
  "lock-retry": s("10s", "first wait after a failed lock attempt (doubles)"),
  "retry-max": s("5m", "cap of the lock and unlock backoffs"),
  "login-delay": s("5m", "grace for logged-in users after the wall message"),
  wall: { kind: "bool", default: true, description: "warn logged-in users before rebooting" } as FlagDef,
};

const FLEETLOCK = {
  ...GLOBAL,
  listen: s("127.0.0.1:8081", "address of the FleetLock HTTP endpoint"),
  "lock-ttl": DAEMON["lock-ttl"],
};

const BOOL_FLAGS = new Set(["debug", "version"]);

/** Go's flag package stops at the first argument that is not a flag: that is the command. */
function splitGlobals(args: string[]): [string[], string[]] {
  let i = 0;
  while (i < args.length) {
    const a = args[i]!;
    if (a === "--") return [args.slice(0, i), args.slice(i + 1)];
    if (!a.startsWith("-") || a === "-") break;
    const name = a.replace(/^--?/, "");
    i += name.includes("=") || BOOL_FLAGS.has(name) || name === "h" || name === "help" ? 1 : 2;
  }
  return [args.slice(0, i), args.slice(i)];
}

function duration(name: string, raw: string): number {
  const ms = parseGoDuration(raw);
  if (typeof ms === "string" || ms < 0) throw new FlagError(`invalid value "${raw}" for flag -${name}: parse error`);
  return ms;
}

function connect(v: Record<string, string | boolean>, lockTtl = 0): ConnectOptions {
  return {
    endpoint: String(v.endpoint),
    cafile: String(v["etcd-cafile"]),
    certfile: String(v["etcd-certfile"]),
    keyfile: String(v["etcd-keyfile"]),
    username: String(v["etcd-username"]),
    password: String(v["etcd-password"]),
    group: String(v.group),
    lockTtl,
  };
}

const env = process.env as Record<string, string | undefined>;

async function ctl(args: string[]): Promise<number> {
  const [head, rest] = splitGlobals(args);
  const p = parseFlags(GLOBAL, head, env, "LOCKSMITHCTL");
  if (p.values.debug) log.level = 4;
  if (p.values.version) {
    process.stdout.write(`locksmithctl version ${pkg.version}\n`);
    return 0;
  }
  const cmd = p.help ? "help" : rest[0];
  return runCtlCommand(
    {
      io: { out: (x) => void process.stdout.write(x), err: (x) => void process.stderr.write(x) },
      open: () => openLock(connect(p.values)),
      machineId: () => machineId(),
      isRoot: () => process.getuid?.() === 0,
      reboot: () => reboot({ command: p.values["reboot-command"], root: p.values["host-root"], env }),
      systemBus: () => systemBus(env),
      updateSocket: socketPath(p.values["update-socket"], env),
    },
    cmd,
    rest.slice(1),
  );
}

async function daemon(args: string[]): Promise<number> {
  const p = parseFlags(DAEMON, args, env, "LOCKSMITHD");
  const v = p.values;
  if (p.help) {
    process.stdout.write(`Usage: locksmithd [flags]\n\n${usage(DAEMON, "LOCKSMITHD")}\n`);
    return 0;
  }
  if (v.version) {
    process.stdout.write(`locksmithd version ${pkg.version}\n`);
    return 0;
  }
  if (v.debug) log.level = 4;
  const lockTtlMs = duration("lock-ttl", v["lock-ttl"]);
  let max: number | null = null;
  if (v.max !== "") {
    if (!/^[0-9]+$/.test(v.max)) throw new FlagError(`invalid value "${v.max}" for flag -max: parse error`);
    max = Number(v.max);
  }
  const files = UPDATE_CONF_FILES.flatMap((f) => {
    try {
      return [readFileSync(f, "utf8")];
    } catch {
      return [];
    }
  });
  const strategy = strategyFrom(files, env);
  let window;
  try {
    window = windowFromEnv(env);
  } catch (e) {
    process.stderr.write(`Error parsing reboot window: ${(e as Error).message}\n`);
    return 1;
  }
  const id = v["machine-id"] || machineId();
  const stateFile = v["state-file"];
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const sock = socketPath(v["update-socket"], env);
  // Locked on the first state change, after the "off" check, as the original (B3 steps 1-2).
  const coordinator = new CoordinatorFile(stateFile, strategy);
  try {
    return await runDaemon({
      strategy,
      window,
      machineId: id,
      max,
      openLock: () => openLock(connect(v, Math.ceil(lockTtlMs / 1000))),
      statuses: (signal) => updateStatuses({ socket: sock, env }, signal),
      reboot: () => reboot({ command: v["reboot-command"], root: v["host-root"], env }),
      wall: (m) => (v.wall ? wall(m) : 0),
      setState: (st) => coordinator.update(st),
      now: () => new Date(),
      timings: {
        unlockDelayMs: duration("unlock-delay", v["unlock-delay"]),
        lockRetryMs: duration("lock-retry", v["lock-retry"]),
        retryMaxMs: duration("retry-max", v["retry-max"]),
        loginDelayMs: duration("login-delay", v["login-delay"]),
        lockTtlMs,
      },
      signal: stop.signal,
    });
  } finally {
    coordinator.close();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

async function fleetlock(args: string[]): Promise<number> {
  const p = parseFlags(FLEETLOCK, args, env, "LOCKSMITHD");
  if (p.help) {
    process.stdout.write(`Usage: coreos locksmith fleetlock [flags]\n\n${usage(FLEETLOCK, "LOCKSMITHD")}\n`);
    return 0;
  }
  const ttl = Math.ceil(duration("lock-ttl", p.values["lock-ttl"]) / 1000);
  const [host, port] = splitHostPort(p.values.listen);
  const locks = new Map<string, ReturnType<typeof openLock>>();
  const lockFor = (group: string) => {
    let l = locks.get(group);
    if (!l) {
      l = openLock({ ...connect(p.values, ttl), group });
      l.catch(() => locks.delete(group));
      locks.set(group, l);
    }
    return l;
  };
  const server = Bun.serve({ hostname: host, port, fetch: fleetLockApp(lockFor).fetch });
  log.withTag("locksmith").info(`FleetLock endpoint on http://${host}:${server.port}`);
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  server.stop(true);
  return 0;
}

function splitHostPort(a: string): [string, number] {
  const i = a.lastIndexOf(":");
  const port = Number(a.slice(i + 1));
  if (i < 0 || !Number.isInteger(port)) throw new FlagError(`invalid -listen address "${a}": want host:port`);
  return [a.slice(0, i).replace(/^\[|\]$/g, ""), port];
}

/** args: "locksmithctl …", "locksmithd …", "daemon …", "fleetlock …", or a ctl verb (with globals before it). */
export async function runLocksmith(args: string[]): Promise<number> {
  try {
    const [first, ...rest] = args;
    if (first === "locksmithd" || first === "daemon") return await daemon(rest);
    if (first === "locksmithctl") return await ctl(rest);
    if (first === "fleetlock") return await fleetlock(rest);
    // Verbs, global flags and unknown words alike go to locksmithctl, which reports the unknown.
    return await ctl(args);
  } catch (e) {
    if (e instanceof FlagError) {
      process.stderr.write(`${e.message}\n`);
      return 2;
    }
    process.stderr.write(`locksmith: ${(e as Error).message}\n`);
    return 1;
  }
}

// Until cmd/coreos.ts dispatches here, `bun cmd/locksmith.ts …` runs the same code.
if (import.meta.main) process.exit(await runLocksmith(process.argv.slice(2)));

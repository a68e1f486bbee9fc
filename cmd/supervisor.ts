// coreos supervisor: `serve` runs the process supervisor for hosts without systemd; the other verbs
// talk to it over its control socket like systemctl/journalctl talk to systemd.
import { hostname } from "node:os";
import { FlagError } from "../internal/flags/flags.ts";
import { log } from "../internal/log/log.ts";
import { SupervisorClient } from "../internal/systemd/client.ts";
import { COMMANDS, ControlError, ControlServer, NotRunningError, supervisorSocket } from "../internal/systemd/control.ts";
import { formatJournalLine, formatList, formatShow, formatStatus } from "../internal/systemd/format.ts";
import type { UnitCommand } from "../internal/systemd/manager.ts";
import { disableUnitFiles, enableUnitFiles, SYSTEM_UNIT_DIRS, systemDirs } from "../internal/systemd/paths.ts";
import { normalizeName, Supervisor } from "../internal/systemd/supervisor.ts";

const USAGE = `Usage: coreos supervisor [--socket PATH] COMMAND [UNIT...]

Runs service units without systemd, from the directories systemd uses
(${SYSTEM_UNIT_DIRS.join(", ")}).

Commands:
  serve [--root DIR] [--unit-dir DIR]... [--target NAME] [--journal-lines N]
                      run the supervisor; starts the units NAME wants (default multi-user.target)
  start|stop|restart|reload|try-restart|reload-or-restart|reload-or-try-restart [--no-block] UNIT...
                      run a job and wait for it (exit 1 when it fails, 5 when the unit is unknown)
  status [UNIT...]    state and newest output (exit 3 when a unit is not active, 4 when unknown)
  is-active UNIT...   print each unit's active state (exit 3 unless all are active)
  show [-p PROP,...] [--value] UNIT...
                      systemctl show's properties (Id, LoadState, ActiveState, SubState, Result,
                      MainPID, NRestarts, FragmentPath, UnitFileState, ...)
  journal [-n N] [-f] UNIT
                      a unit's captured output and the supervisor's lines about it (-f: follow)
  list                every service unit with its states
  daemon-reload       re-read unit files
  reset-failed UNIT...  forget a failed state and the start limit
  enable|disable [--root DIR] [--runtime] UNIT...
                      make or remove the [Install] links (no supervisor needed)

The socket is --socket, else $COREOS_SUPERVISOR_SOCKET, else /run/coreos/supervisor.sock.
`;

interface Args {
  positionals: string[];
  one: Map<string, string>;
  unitDirs: string[];
  runtime: boolean;
  noBlock: boolean;
  value: boolean;
  follow: boolean;
}

/** How often `journal -f` asks for new lines. */
const FOLLOW_MS = 250;

const VALUE_FLAGS = new Set(["socket", "root", "unit-dir", "target", "journal-lines", "n", "lines", "p", "property"]);

function parseArgs(argv: string[]): Args | "help" {
  const a: Args = { positionals: [], one: new Map(), unitDirs: [], runtime: false, noBlock: false, value: false, follow: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") {
      a.positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith("-") || arg === "-") {
      a.positionals.push(arg);
      continue;
    }
    const body = arg.replace(/^--?/, "");
    const eq = body.indexOf("=");
    const name = eq === -1 ? body : body.slice(0, eq);
    if (name === "h" || name === "help") return "help";
    if (name === "runtime" || name === "no-block" || name === "value" || name === "f" || name === "follow") {
      if (name === "runtime") a.runtime = true;
      else if (name === "no-block") a.noBlock = true;
      else if (name === "value") a.value = true;
      else a.follow = true;
      continue;
    }
    if (!VALUE_FLAGS.has(name)) throw new FlagError(`unknown flag ${arg}`);
    let value: string;
    if (eq !== -1) value = body.slice(eq + 1);
    else {
      const next = argv[++i];
      if (next === undefined) throw new FlagError(`flag ${arg} needs a value`);
      value = next;
    }
    if (name === "unit-dir") a.unitDirs.push(value);
    else a.one.set(name === "lines" ? "n" : name === "property" ? "p" : name, value);
  }
  return a;
}

function count(a: Args, name: string): number | undefined {
  const raw = a.one.get(name);
  if (raw === undefined) return undefined;
  if (!/^[0-9]+$/.test(raw)) throw new FlagError(`invalid value "${raw}" for --${name}: not a number`);
  return Number(raw);
}

// As a container's PID 1 this process does not reap orphans that are not its own children; run
// it under an init such as `docker run --init` (tini) when units leave daemonized processes.
async function serve(a: Args, socket: string): Promise<number> {
  const root = a.one.get("root") ?? "/";
  const dirs = a.unitDirs.length > 0 ? { root, dirs: a.unitDirs } : systemDirs(root);
  const sup = new Supervisor({ dirs, journalLines: count(a, "journal-lines") });
  const server = new ControlServer(socket, sup);
  try {
    await server.start();
  } catch (e) {
    process.stderr.write(`coreos supervisor: ${(e as Error).message}\n`);
    return 1;
  }
  log.info(`supervisor: serving ${socket}; units from ${dirs.dirs.map((d) => (root === "/" ? d : `${root}${d}`)).join(", ")}`);
  const target = a.one.get("target") ?? "multi-user.target";
  let stopping: Promise<void> | null = null;
  const done = new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      if (stopping) return;
      log.info(`supervisor: ${sig}: stopping every unit`);
      stopping = sup.shutdown().then(() => server.close()).then(resolve);
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
  });
  // Like `kill -HUP 1` on systemd: re-read the unit files.
  process.on("SIGHUP", () => sup.daemonReload());
  if (target !== "") await sup.boot(target);
  await done;
  log.info("supervisor: stopped");
  return 0;
}

/** systemctl's exit code for a refused request. */
function exitFor(e: unknown): number {
  if (e instanceof ControlError && e.code === "not-found") return 5;
  return 1;
}

export async function runSupervisor(args: string[]): Promise<number> {
  let a: Args | "help";
  try {
    a = parseArgs(args);
  } catch (e) {
    process.stderr.write(`coreos supervisor: ${(e as Error).message}\n`);
    return 2;
  }
  if (a === "help" || a.positionals.length === 0) {
    (a === "help" ? process.stdout : process.stderr).write(USAGE);
    return a === "help" ? 0 : 2;
  }
  const [verb, ...rest] = a.positionals as [string, ...string[]];
  const socket = supervisorSocket(a.one.get("socket"));
  const client = new SupervisorClient({ socket, root: a.one.get("root") ?? "/" });
  const units = rest.map(normalizeName);
  const needUnits = (): boolean => {
    if (units.length > 0) return true;
    process.stderr.write(`coreos supervisor: ${verb} needs a unit name\n`);
    return false;
  };
  try {
    switch (verb) {
      case "serve":
        return await serve(a, socket);
      case "list":
        process.stdout.write(formatList(await client.list()));
        return 0;
      case "daemon-reload":
        await client.daemonReload();
        return 0;
      case "enable": {
        if (!needUnits()) return 2;
        for (const u of units) {
          const r = enableUnitFiles(systemDirs(client.root), u, { runtime: a.runtime });
          for (const c of r.created) process.stderr.write(`Created symlink ${c.link} → ${c.target}.\n`);
          for (const w of r.warnings) process.stderr.write(`${w}\n`);
        }
        return 0;
      }
      case "disable": {
        if (!needUnits()) return 2;
        for (const u of units) {
          for (const r of disableUnitFiles(systemDirs(client.root), u, { runtime: a.runtime })) process.stderr.write(`Removed "${r}".\n`);
        }
        return 0;
      }
      case "reset-failed": {
        if (!needUnits()) return 2;
        for (const u of units) await client.resetFailed(u);
        return 0;
      }
      case "status": {
        const names = units.length > 0 ? units : (await client.list()).map((u) => u.name);
        let code = 0;
        const n = count(a, "n") ?? 10;
        for (const [i, u] of names.entries()) {
          const s = await client.status(u);
          if (s.load === "not-found" && s.active === "inactive") {
            process.stderr.write(`Unit ${u} could not be found.\n`);
            code = 4;
            continue;
          }
          if (i > 0) process.stdout.write("\n");
          const journal = n > 0 ? await client.journalEntries(u, n) : [];
          process.stdout.write(formatStatus(s, journal, hostname(), Date.now()));
          if (s.active !== "active" && s.active !== "reloading" && code === 0) code = 3;
        }
        return code;
      }
      case "show": {
        if (!needUnits()) return 2;
        const props = (a.one.get("p") ?? "").split(",").filter(Boolean);
        for (const [i, u] of units.entries()) {
          if (i > 0) process.stdout.write("\n");
          process.stdout.write(formatShow(await client.status(u), props, a.value));
        }
        return 0;
      }
      case "is-active": {
        if (!needUnits()) return 2;
        let code = 0;
        for (const u of units) {
          const s = await client.status(u);
          process.stdout.write(`${s.active}\n`);
          if (s.active !== "active" && s.active !== "reloading") code = 3;
        }
        return code;
      }
      case "journal": {
        if (!needUnits()) return 2;
        const host = hostname();
        let last = 0;
        const show = async (n?: number) => {
          for (const e of await client.journalEntries(units[0]!, n)) {
            if (e.seq <= last) continue;
            process.stdout.write(`${formatJournalLine(e, host)}\n`);
            last = e.seq;
          }
        };
        await show(count(a, "n"));
        if (!a.follow) return 0;
        // -f: new lines as they come, until interrupted (as journalctl -f).
        let stop = false;
        process.once("SIGINT", () => (stop = true));
        process.once("SIGTERM", () => (stop = true));
        while (!stop) {
          await Bun.sleep(FOLLOW_MS);
          await show();
        }
        return 0;
      }
      default: {
        if (!(COMMANDS as readonly string[]).includes(verb)) {
          process.stderr.write(`coreos supervisor: unknown command "${verb}" (try: coreos supervisor --help)\n`);
          return 2;
        }
        if (!needUnits()) return 2;
        let code = 0;
        for (const u of units) {
          try {
            if (a.noBlock) await client.run(verb as UnitCommand, u);
            else await client.runAndWait(verb as UnitCommand, u);
          } catch (e) {
            if (e instanceof NotRunningError) throw e;
            const msg = e instanceof ControlError && e.code === "failed" && e.message.startsWith("Job for") ? e.message : `Failed to ${verb} ${u}: ${(e as Error).message}`;
            process.stderr.write(`${msg}\n`);
            code = Math.max(code, exitFor(e));
          }
        }
        return code;
      }
    }
  } catch (e) {
    if (e instanceof FlagError) {
      process.stderr.write(`coreos supervisor: ${e.message}\n`);
      return 2;
    }
    process.stderr.write(`coreos supervisor: ${(e as Error).message}\n`);
    return 1;
  }
}

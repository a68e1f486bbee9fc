// coreos update-engine client (`update_engine_client`, spec §2.6): Go/gflags-style single-dash
// flags, the first action flag in the original's order wins. Reaches the engine over
// com.coreos.update1 like the original, or over the control socket (see pickLink).
import { parseGoDuration } from "../../internal/ctl/goflag.ts";
import { FlagError, parseFlags, usage, type FlagDef } from "../../internal/flags/flags.ts";
import { engineAbsent, formatStatusBlock, pickLink, progressBar, watchLines, type EngineLink } from "../../internal/update/client.ts";
import { CONTROL_SOCKET_ENV, Operation, type Status } from "../../internal/update/status.ts";

const b = (description: string): FlagDef => ({ kind: "bool", default: false, description });

const FLAGS = {
  reset_status: b("go back to idle after an applied update (the partition table is not changed)"),
  status: b("print the engine's status"),
  check_for_update: b("start an update check and return"),
  update: b("check for an update, install it and wait until it is done"),
  watch_for_updates: b("print every status change until interrupted"),
  control_socket: {
    kind: "string",
    default: "",
    description: `the engine's control socket, or tcp://HOST:PORT (default $${CONTROL_SOCKET_ENV}; without either, the system bus, else /run/update-engine/control.sock)`,
  } as FlagDef,
  retry_delay: { kind: "string", default: "10s", description: "wait between the 4 attempts to reach the engine" } as FlagDef,
};

const ACTIONS = ["reset_status", "status", "check_for_update", "update", "watch_for_updates"] as const;
const RETRIES = 4;
const LIVENESS_MS = 5000;

const env = process.env as Record<string, string | undefined>;
const out = (s: string) => void process.stdout.write(s);
const err = (s: string) => void process.stderr.write(s);

/** The first call reaches the engine, retrying as the original retries getting its D-Bus proxy. */
async function reach<T>(link: EngineLink, what: () => Promise<T>, delayMs: number): Promise<T> {
  let last: unknown;
  for (let i = 0; i <= RETRIES; i++) {
    try {
      return await what();
    } catch (e) {
      // Only "nobody there" is worth a retry; a refusal from the engine is final.
      if (!engineAbsent(e)) throw e;
      last = e;
      if (i < RETRIES) await Bun.sleep(delayMs);
    }
  }
  throw new Error(`cannot reach the update engine over ${link.via}: ${(last as Error).message}`);
}

async function update(link: EngineLink, delayMs: number): Promise<number> {
  const stop = new AbortController();
  const tty = process.stdout.isTTY === true;
  await reach(link, () => link.getStatus(), delayMs);
  const statuses = link.statuses(stop.signal);
  // Subscribed (its first answer is the current status) before asking, so no state of this attempt goes unseen.
  const first = await statuses.next();
  await link.attemptUpdate();
  err("Initiating update check and install.\n");
  let started = false;
  let failed = false;
  let lastOp = "";
  let lastTenth = -1;
  const handle = (s: Status): number | null => {
    if (tty) out(`\r${progressBar(s)}`);
    else if (s.current_operation !== lastOp) out(formatStatusBlock(s));
    else if (Math.floor(s.progress * 10) !== lastTenth) out(`PROGRESS=${s.progress.toFixed(6)}\n`);
    lastOp = s.current_operation;
    lastTenth = Math.floor(s.progress * 10);
    if (s.current_operation === Operation.ReportingErrorEvent) failed = true;
    if (s.current_operation === Operation.UpdatedNeedReboot) {
      if (tty) out("\n");
      err("Update succeeded -- reboot needed.\n");
      return 0;
    }
    if (s.current_operation === Operation.Idle) {
      // The status from before the request: the check has not started yet.
      if (!started) return null;
      if (tty) out("\n");
      err(failed ? "Update failed.\n" : "No update available.\n");
      return 0;
    }
    started = true;
    return null;
  };
  // The original polls GetStatus every 5 s and gives up when the engine is gone; so do we, while
  // the status changes arrive on the stream.
  let lost: Error | null = null;
  let misses = 0;
  const liveness = setInterval(() => {
    link.getStatus().then(
      () => (misses = 0),
      (e: Error) => {
        if (++misses >= 3) {
          lost = e;
          stop.abort();
        }
      },
    );
  }, LIVENESS_MS);
  try {
    if (!first.done) {
      const r = handle(first.value);
      if (r !== null) return r;
    }
    for await (const s of statuses) {
      const r = handle(s);
      if (r !== null) return r;
    }
    if (tty) out("\n");
    throw new Error(`lost the update engine over ${link.via}: ${(lost as Error | null)?.message ?? "status stream ended"}`);
  } finally {
    clearInterval(liveness);
    stop.abort();
    await statuses.return(undefined);
  }
}

async function client(args: string[]): Promise<number> {
  const p = parseFlags(FLAGS, args, env, "UPDATE_ENGINE_CLIENT");
  if (p.help) {
    out(`Usage: update_engine_client [flags]\n\n${usage(FLAGS, "UPDATE_ENGINE_CLIENT")}\n`);
    return 0;
  }
  if (p.positionals.length > 0) throw new FlagError(`unexpected argument "${p.positionals[0]}"`);
  const v = p.values;
  const delay = parseGoDuration(v.retry_delay);
  if (typeof delay === "string" || delay < 0) throw new FlagError(`invalid value "${v.retry_delay}" for flag -retry_delay: parse error`);
  const action = ACTIONS.find((a) => v[a]);
  if (action === undefined) throw new FlagError(`no action given: one of ${ACTIONS.map((a) => `-${a}`).join(", ")}`);
  const link = await pickLink(v.control_socket || env[CONTROL_SOCKET_ENV], env);
  try {
    switch (action) {
      case "reset_status":
        await reach(link, () => link.resetStatus(), delay);
        err("ResetStatus succeeded; to undo partition table changes, give the running USR partition the top priority again:\n");
        err('  coreos update-engine disk prioritize DISK -i N   (or: cgpt prioritize "$(rootdev -s /usr)")\n');
        return 0;
      case "status":
        out(formatStatusBlock(await reach(link, () => link.getStatus(), delay)));
        return 0;
      case "check_for_update":
        await reach(link, () => link.attemptUpdate(), delay);
        err("Initiating update check.\n");
        return 0;
      case "update":
        return await update(link, delay);
      case "watch_for_updates": {
        const stop = new AbortController();
        process.once("SIGINT", () => stop.abort());
        process.once("SIGTERM", () => stop.abort());
        await reach(link, () => link.getStatus(), delay);
        for await (const s of link.statuses(stop.signal)) out(watchLines(s));
        return 0;
      }
    }
  } finally {
    link.close();
  }
}

export async function run(args: string[]): Promise<number> {
  try {
    return await client(args);
  } catch (e) {
    if (e instanceof FlagError) {
      err(`${e.message}\n`);
      return 2;
    }
    err(`update_engine_client: ${(e as Error).message}\n`);
    return 1;
  }
}

// The update engine daemon's core: performs the effects of the pure state machine (machine.ts)
// against the world — Omaha requests over HTTP, the payload download onto the passive USR
// partition, the GPT switch, prefs, timers — and publishes every status change.
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import * as gpt from "../gpt/index.ts";
import { partitionPath, SYSFS } from "../gpt/sysfs.ts";
import type { ConsolaInstance } from "consola";
import { logger } from "../log/log.ts";
import { streamLines } from "../lines/lines.ts";
import { runProgram } from "../systemd/systemctl.ts";
import {
  buildRequest,
  checkEvent,
  decodeErrorCode,
  ErrorCode,
  ErrorFlag,
  eventResultName,
  eventTypeName,
  interpretCheckReply,
  UPDATER_VERSION,
  type CheckOutcome,
  type OmahaEvent,
  type RequestBody,
  type RequestParams,
  type UpdateOffer,
} from "../omaha/index.ts";
import type { Rand } from "../random/random.ts";
import { PRODUCTION_SERVER, type HostConfig, type Paths } from "./conf.ts";
import { INITIAL, NEED_REBOOT_AT_START, operation, statusOf, step, type Effect, type Input, type MachineConfig, type MachineState } from "./machine.ts";
import { Pref, Prefs } from "./prefs.ts";
import {
  afterFailure,
  afterSuccess,
  firstCheck,
  forResponse,
  nextCheck,
  shouldBackoff,
  type NextCheck,
  type PayloadBackoff,
} from "./schedule.ts";
import type { Status } from "./status.ts";

/** Where the payload goes: the byte range of a partition on a disk (image file or device). */
export interface InstallTarget {
  path: string;
  offset: number;
  length: number;
}

export interface InstallRequest {
  url: string;
  /** Sent with every request of the download (DOWNLOAD_USER/PASSWORD as basic auth, as libcurl sends them). */
  headers?: Record<string, string>;
  size: number;
  sha256Base64: string;
  /** Undefined when the key file is missing: the signature is then not checked (with a warning). */
  publicKeyPem?: string;
  target: InstallTarget;
  /** Where the payload's KERNEL procedure goes; undefined: checked only. */
  kernelPath?: string;
  stateDir: string;
  onProgress: (bytesDone: number, total: number) => void;
  signal: AbortSignal;
}

/** Downloads, verifies (size, SHA-256, signature, written partition hash) and writes; rejects with an error carrying `code`. */
export type Installer = (r: InstallRequest) => Promise<unknown>;

/** The running USR partition: a partition number or a PARTUUID on `disk`. */
export type UsrSelector = { number: number } | { partuuid: string };

export interface EngineOptions {
  host: HostConfig;
  paths: Paths;
  /** The boot disk; null when unknown (updates then fail with InstallDeviceOpenError, mark-good is skipped). */
  disk: string | null;
  usr: UsrSelector | null;
  install: Installer;
  rand: Rand;
  /** Multiplies every scheduling delay (tests run the schedule fast; the logged decisions stay in real seconds). */
  intervalScale: number;
  markGoodDelayMs: number;
  /** Periodic checks at all (interactive ones always work). */
  periodicChecks: boolean;
  /**
   * flatcar-postinst's OEM hook (§4.4): the first of these that is an executable file runs before
   * the switch. Default: none.
   */
  oemPostinst?: readonly string[];
  now?: () => number;
  fetch?: typeof fetch;
  /** Default: the "update_engine" tag of internal/log. */
  log?: ConsolaInstance;
}

const OMAHA_TIMEOUT_MS = 60_000;

export class Engine {
  private state: MachineState;
  private readonly prefs: Prefs;
  private readonly cfg: MachineConfig;
  private readonly listeners = new Set<(s: Status) => void>();
  private readonly queue: Effect[] = [];
  private pumping = false;
  private idleWaiters: (() => void)[] = [];
  private lastInterval = 0;
  private checkTimer: ReturnType<typeof setTimeout> | null = null;
  private markGoodTimer: ReturnType<typeof setTimeout> | null = null;
  private markGoodDone = false;
  /** The attempt's events go out with the install source of the check that started it. */
  private attemptInteractive = false;
  private readonly abort = new AbortController();
  private published: { status: Status; at: number } | null = null;
  private readonly now: () => number;
  private readonly fetch: typeof fetch;
  private readonly log: ConsolaInstance;

  constructor(private readonly o: EngineOptions) {
    this.log = o.log ?? logger("update_engine");
    this.prefs = new Prefs(o.paths.prefsDir);
    const flags: ErrorFlag[] = [];
    if (o.host.devMode) flags.push(ErrorFlag.TestImage);
    if (o.host.server !== PRODUCTION_SERVER) flags.push(ErrorFlag.TestOmahaUrl);
    this.cfg = { flags };
    this.state = existsSync(o.paths.rebootMarker) ? NEED_REBOOT_AT_START : INITIAL;
    this.now = o.now ?? (() => Math.floor(Date.now() / 1000));
    this.fetch = o.fetch ?? fetch;
  }

  get status(): Status {
    return statusOf(this.state);
  }

  onStatus(f: (s: Status) => void): () => void {
    this.listeners.add(f);
    return () => this.listeners.delete(f);
  }

  /** Records the aleph version, arms mark-good and the first check. */
  start(): void {
    if (this.prefs.get(Pref.AlephVersion) === null) this.prefs.set(Pref.AlephVersion, this.o.host.version);
    const prev = this.prefs.get(Pref.PreviousVersion);
    if (prev !== null && prev !== "" && prev === this.o.host.version) {
      this.log.warn(`rollback detected: still running ${prev} after an update; the next check reports it (error ${ErrorCode.RollbackError})`);
    }
    this.log.info(`running ${this.o.host.version} (${this.o.host.group}), server ${this.o.host.server}, state ${operation(this.state.stage)}`);
    this.markGoodTimer = setTimeout(() => this.markGood(), this.o.markGoodDelayMs);
    if (this.o.periodicChecks) this.arm(firstCheck(this.o.rand));
    else this.log.info("periodic update checks are off (test image)");
  }

  async stop(): Promise<void> {
    this.abort.abort(new Error("update engine stopping"));
    if (this.checkTimer) clearTimeout(this.checkTimer);
    if (this.markGoodTimer) clearTimeout(this.markGoodTimer);
    this.checkTimer = this.markGoodTimer = null;
    await this.settled();
  }

  /** Resolves once every effect queued so far has been performed. */
  async settled(): Promise<void> {
    if (this.pumping) await new Promise<void>((r) => this.idleWaiters.push(r));
  }

  /** D-Bus AttemptUpdate: an interactive check, ignored unless idle (or a ping while waiting for a reboot). */
  async attemptUpdate(): Promise<void> {
    const op = operation(this.state.stage);
    if (this.state.stage.kind !== "idle" && this.state.stage.kind !== "need-reboot") {
      this.log.info(`update check requested while ${op}: ignored`);
      return;
    }
    this.log.info("update check requested");
    this.feed({ type: "check", interactive: true });
  }

  /** D-Bus ResetStatus: from UPDATED_NEED_REBOOT back to IDLE (the partition table is left as it is). */
  async resetStatus(): Promise<void> {
    const r = this.feed({ type: "reset" });
    if (r) throw new Error(r);
  }

  // --- the driver ---

  private feed(input: Input): string | undefined {
    const r = step(this.state, input, this.cfg);
    this.state = r.state;
    this.publish();
    this.queue.push(...r.effects);
    void this.pump();
    return r.refused;
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.queue.length > 0) {
        const e = this.queue.shift()!;
        let next: Input | null;
        try {
          next = await this.perform(e);
        } catch (err) {
          this.log.error(`${e.type}: ${(err as Error).message}`);
          next = this.recover(e, err as Error);
        }
        if (next) {
          const r = step(this.state, next, this.cfg);
          this.state = r.state;
          this.publish();
          this.queue.push(...r.effects);
        }
      }
    } finally {
      this.pumping = false;
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  /** Status to listeners: every operation change; progress on ≥1%, at 100% or every 10 s (§2.2). */
  private publish(): void {
    const s = this.status;
    const p = this.published;
    const t = Date.now();
    if (p && p.status.current_operation === s.current_operation && p.status.new_version === s.new_version && p.status.last_checked_time === s.last_checked_time) {
      const moved = Math.abs(s.progress - p.status.progress);
      if (moved === 0 || (moved < 0.01 && s.progress < 1 && t - p.at < 10_000)) return;
    }
    if (!p || p.status.current_operation !== s.current_operation) this.log.info(`status ${s.current_operation}`);
    this.published = { status: s, at: t };
    for (const f of this.listeners) f(s);
  }

  /** An effect that threw (a prefs write on a full disk, say) still ends its step, so no state is stuck. */
  private recover(e: Effect, err: Error): Input | null {
    switch (e.type) {
      case "send-check":
        return { type: "checked", outcome: { kind: "error", code: ErrorCode.Error, message: err.message, pollInterval: 0 }, httpStatus: 0, now: this.now() };
      case "send-ping":
        return { type: "pinged" };
      case "send-event":
        return { type: "event-sent" };
      case "download":
      case "finalize":
        return { type: "failed", code: ErrorCode.Error, resumed: false };
      default:
        return null;
    }
  }

  private async perform(e: Effect): Promise<Input | null> {
    switch (e.type) {
      case "send-check":
        return this.check(e.interactive);
      case "send-ping":
        await this.post({ kind: "ping" }, e.interactive).catch((err: Error) => this.log.warn(`ping: ${err.message}`));
        return { type: "pinged" };
      case "send-event":
        await this.sendEvent(e.event);
        return { type: "event-sent" };
      case "download":
        return this.download(e.offer);
      case "finalize":
        return this.finalize(e.offer);
      case "payload-failed":
        this.saveBackoff(afterFailure(this.loadBackoff(), e.code, { urls: e.offer.urls.length, maxFailuresPerUrl: e.offer.maxFailureCountPerUrl, now: this.now() }, this.o.rand));
        return null;
      case "payload-succeeded":
        this.saveBackoff(afterSuccess(this.loadBackoff()));
        return null;
      case "clear-reboot-marker":
        rmSync(this.o.paths.rebootMarker, { force: true });
        this.log.info("status reset to idle; the partition table still boots the new slot (prioritize the running partition to undo)");
        return null;
      case "schedule":
        if (this.o.periodicChecks) this.arm(nextCheck(this.lastInterval, e.hint, this.o.rand));
        return null;
    }
  }

  private arm(n: NextCheck): void {
    if (this.abort.signal.aborted) return;
    this.lastInterval = n.interval;
    if (this.checkTimer) clearTimeout(this.checkTimer);
    const why = n.reason === "backoff" ? "backing off after a server error" : n.reason === "poll-interval" ? "server's PollInterval" : n.reason;
    this.log.info(`next update check in ${n.delay}s (interval ${n.interval}s ±${n.fuzz / 2}s, ${why})`);
    this.checkTimer = setTimeout(() => {
      this.checkTimer = null;
      this.feed({ type: "check", interactive: false });
    }, n.delay * 1000 * this.o.intervalScale);
  }

  // --- Omaha ---

  private params(interactive: boolean): RequestParams {
    const h = this.o.host;
    return {
      updaterVersion: UPDATER_VERSION,
      interactive,
      os: { version: "Chateau", platform: "CoreOS", sp: `${h.version}_${h.arch}` },
      app: {
        appid: h.appId,
        version: h.version,
        track: h.group,
        bootid: h.bootId,
        oem: h.oem,
        oemversion: h.oemVersion,
        alephversion: this.prefs.get(Pref.AlephVersion) ?? "",
        machineid: h.machineId,
        machinealias: h.machineAlias,
        lang: "en-US",
        board: h.board,
        hardware_class: "",
        delta_okay: false,
      },
    };
  }

  /** One POST; resolves with the HTTP status and body, rejects when no answer came. */
  private async post(body: RequestBody, interactive: boolean): Promise<{ status: number; text: string }> {
    const xml = buildRequest(this.params(interactive), body);
    const signal = AbortSignal.any([this.abort.signal, AbortSignal.timeout(OMAHA_TIMEOUT_MS)]);
    const res = await this.fetch(this.o.host.server, { method: "POST", headers: { "Content-Type": "text/xml" }, body: xml, signal });
    return { status: res.status, text: await res.text() };
  }

  private async sendEvent(ev: OmahaEvent): Promise<void> {
    const what = `event ${ev.type}/${ev.result} (${eventTypeName(ev.type)}/${eventResultName(ev.result)}${ev.errorCode !== undefined ? `, ${ev.errorCode} ${decodeErrorCode(ev.errorCode).name}` : ""})`;
    try {
      const r = await this.post({ kind: "event", event: ev }, this.attemptInteractive);
      this.log.info(`${what} sent, HTTP ${r.status}`);
    } catch (err) {
      // Events are best effort: the attempt goes on either way.
      this.log.warn(`${what} not delivered: ${(err as Error).message}`);
    }
  }

  private async check(interactive: boolean): Promise<Input> {
    this.attemptInteractive = interactive;
    this.markGood();
    const prev = this.prefs.get(Pref.PreviousVersion);
    const body: RequestBody = { kind: "updatecheck", event: checkEvent(prev, this.o.host.version) };
    let reply: { status: number; text: string };
    try {
      reply = await this.post(body, interactive);
    } catch (err) {
      // No answer at all: libcurl reports HTTP code 0.
      reply = { status: 0, text: "" };
      this.log.warn(`update check failed: ${(err as Error).message}`);
    }
    const status = reply.status;
    let outcome: CheckOutcome = interpretCheckReply(reply.status, reply.text);
    if (outcome.kind === "update") this.prefs.set(Pref.FullResponse, reply.text);
    // The previous-version event went out (or was tried) once; later checks send "".
    this.prefs.set(Pref.PreviousVersion, "");
    if (outcome.kind === "update") {
      const offer = outcome.offer;
      const backoff = forResponse(this.loadBackoff(), offer.sha256);
      this.saveBackoff(backoff);
      if (shouldBackoff(backoff, this.now(), { disabled: offer.disablePayloadBackoff, delta: offer.isDeltaPayload, devMode: this.o.host.devMode })) {
        this.log.info(`update ${offer.version} found, but downloads back off until ${new Date(backoff.backoffExpiry * 1000).toISOString()}`);
        outcome = { kind: "error", code: ErrorCode.OmahaUpdateDeferredForBackoff, message: "payload backoff", pollInterval: outcome.pollInterval };
      } else {
        this.log.info(`update available: ${offer.version}, ${offer.size} bytes from ${offer.urls[backoff.urlIndex % offer.urls.length]}`);
      }
    } else if (outcome.kind === "noupdate") {
      this.log.info("no update");
    } else {
      this.log.warn(`update check: error ${outcome.code} (${decodeErrorCode(outcome.code).name}): ${outcome.message}`);
    }
    return { type: "checked", outcome, httpStatus: status, now: this.now() };
  }

  // --- payload backoff in prefs ---

  private loadBackoff(): PayloadBackoff {
    return {
      signature: this.prefs.get(Pref.CurrentResponseSignature) ?? "",
      urlIndex: this.prefs.getInt(Pref.CurrentUrlIndex),
      urlFailureCount: this.prefs.getInt(Pref.CurrentUrlFailureCount),
      attemptNumber: this.prefs.getInt(Pref.PayloadAttemptNumber),
      backoffExpiry: this.prefs.getInt(Pref.BackoffExpiryTime),
    };
  }

  private saveBackoff(b: PayloadBackoff): void {
    this.prefs.set(Pref.CurrentResponseSignature, b.signature);
    this.prefs.set(Pref.CurrentUrlIndex, b.urlIndex);
    this.prefs.set(Pref.CurrentUrlFailureCount, b.urlFailureCount);
    this.prefs.set(Pref.PayloadAttemptNumber, b.attemptNumber);
    this.prefs.set(Pref.BackoffExpiryTime, b.backoffExpiry);
  }

  // --- disk ---

  /** The running and the passive USR partitions on the disk, or why they cannot be known. */
  private slots(): { disk: string; running: gpt.Partition; passive: gpt.Partition } | string {
    const disk = this.o.disk;
    if (disk === null) return "the boot disk is unknown (give --disk)";
    if (this.o.usr === null) return "the running USR partition is unknown (give --usr-partition)";
    const t = gpt.readDisk(disk);
    const usr = this.o.usr;
    const running = "number" in usr ? t.partitions.find((p) => p.number === usr.number) : gpt.partitionByUuid(t, usr.partuuid);
    if (!running) return `${disk}: no partition ${"number" in usr ? usr.number : usr.partuuid}`;
    if (!gpt.isUsr(running)) return `${disk}: partition ${running.number} is not a USR partition`;
    const others = gpt.usrPartitions(t).filter((p) => p.number !== running.number);
    if (others.length !== 1) return `${disk}: ${others.length} other USR partitions, expected exactly one`;
    return { disk, running, passive: others[0]! };
  }

  /** setgoodroot (§4.6), once per daemon run, not while an applied update waits for its reboot. */
  private markGood(): void {
    if (this.markGoodDone) return;
    this.markGoodDone = true;
    if (this.markGoodTimer) clearTimeout(this.markGoodTimer);
    if (this.state.stage.kind === "need-reboot") {
      this.log.info("an update waits for a reboot: the running partition is not marked good");
      return;
    }
    try {
      const s = this.slots();
      if (typeof s === "string") {
        this.log.warn(`not marking the running partition good: ${s}`);
        return;
      }
      gpt.markGood(s.disk, s.running.number);
      this.log.info(`marked ${s.disk} partition ${s.running.number} (${s.running.label}) good`);
    } catch (err) {
      this.log.error(`marking the running partition good failed: ${(err as Error).message}`);
    }
  }

  private async download(offer: UpdateOffer): Promise<Input> {
    const slots = (() => {
      try {
        return this.slots();
      } catch (err) {
        return (err as Error).message;
      }
    })();
    if (typeof slots === "string") {
      this.log.error(`cannot install: ${slots}`);
      return { type: "failed", code: ErrorCode.InstallDeviceOpenError, resumed: false };
    }
    const t = gpt.readDisk(slots.disk);
    const range = gpt.partitionRange(t, slots.passive.number);
    const stateDir = this.o.paths.downloadStateDir;
    // update_engine resumes when the response's hash is the one it was downloading before.
    const resumed =
      this.prefs.get(Pref.UpdateCheckResponseHash) === offer.sha256 && existsSync(stateDir) && readdirSync(stateDir).length > 0;
    this.prefs.set(Pref.UpdateCheckResponseHash, offer.sha256);
    const backoff = this.loadBackoff();
    const url = offer.urls[backoff.urlIndex % offer.urls.length]!;
    let publicKeyPem: string | undefined;
    try {
      publicKeyPem = readFileSync(this.o.paths.publicKey, "utf8");
    } catch {
      this.log.warn(`${this.o.paths.publicKey} missing: the payload signature is not checked`);
    }
    const kernelPath = this.kernelPath(slots.passive);
    this.log.info(
      `downloading ${url} onto ${slots.disk} partition ${slots.passive.number} (${slots.passive.label})` +
        `${kernelPath ? `, kernel to ${kernelPath}` : ""}${resumed ? ", resuming" : ""}`,
    );
    try {
      await this.o.install({
        url,
        ...this.credentials(),
        size: offer.size,
        sha256Base64: offer.sha256,
        publicKeyPem,
        target: { path: slots.disk, ...range },
        kernelPath,
        stateDir,
        onProgress: (done, total) => {
          const r = step(this.state, { type: "progress", received: done, total: total || offer.size }, this.cfg);
          this.state = r.state;
          this.publish();
        },
        signal: this.abort.signal,
      });
    } catch (err) {
      const code = typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : ErrorCode.DownloadTransferError;
      this.log.error(`update failed: error ${code} (${decodeErrorCode(code).name}): ${(err as Error).message}`);
      return { type: "failed", code, resumed };
    }
    this.log.info(`payload ${offer.version} written and verified on partition ${slots.passive.number}`);
    return { type: "downloaded" };
  }

  /** vmlinuz-a for USR-A, vmlinuz-b for USR-B, in the first kernel directory that exists (§2.3). */
  private kernelPath(p: gpt.Partition): string | undefined {
    const dir = this.o.paths.kernelDirs.find((d) => existsSync(d));
    if (dir === undefined) return undefined;
    const slot = p.label === "USR-A" || (p.label !== "USR-B" && p.number === 3) ? "a" : "b";
    return join(dir, `vmlinuz-${slot}`);
  }

  /** In a header rather than the URL, so no message that quotes the URL carries the password. */
  private credentials(): { headers?: Record<string, string> } {
    const h = this.o.host;
    if (h.downloadUser === "" && h.downloadPassword === "") return {};
    return { headers: { Authorization: `Basic ${Buffer.from(`${h.downloadUser}:${h.downloadPassword}`).toString("base64")}` } };
  }

  /** flatcar-postinst's OEM hook and switch (§4.4), and the completion records of §1.4. */
  private async finalize(offer: UpdateOffer): Promise<Input> {
    if (!(await this.oemPostinst())) return { type: "failed", code: ErrorCode.PostinstallRunnerError, resumed: false };
    // Recorded before the switch, so a switched table never goes without it (a throw here leaves
    // the table as it was); taken back if the switch fails, or the next check would claim a rollback.
    const before = this.prefs.get(Pref.PreviousVersion);
    this.prefs.set(Pref.PreviousVersion, this.o.host.version);
    try {
      const s = this.slots();
      if (typeof s === "string") throw new Error(s);
      gpt.switchTo(s.disk, s.passive.number);
      this.log.info(`partition ${s.passive.number} (${s.passive.label}) boots next: priority top, tries 1, not yet successful`);
    } catch (err) {
      this.log.error(`switching to the new partition failed: ${(err as Error).message}`);
      if (before === null) this.prefs.delete(Pref.PreviousVersion);
      else this.prefs.set(Pref.PreviousVersion, before);
      return { type: "failed", code: ErrorCode.PostinstallRunnerError, resumed: false };
    }
    for (const f of [this.o.paths.rebootMarker, this.o.paths.rebootRequired]) {
      try {
        mkdirSync(dirname(f), { recursive: true });
        writeFileSync(f, "");
      } catch (err) {
        this.log.warn(`${f}: ${(err as Error).message}`);
      }
    }
    this.log.info(`update to ${offer.version} complete; reboot to use it`);
    return { type: "finalized" };
  }

  /**
   * `/oem/bin/oem-postinst <slot> <mnt>` when it is an executable file (postinst's `[[ -x ]]`),
   * with the new USR mounted read-only at <mnt> as PostinstallRunner mounts it; false when it ran
   * and failed, which fails the update before the switch.
   */
  private async oemPostinst(): Promise<boolean> {
    const hook = (this.o.oemPostinst ?? []).find((p) => {
      try {
        if (!statSync(p).isFile()) return false;
      } catch {
        return false;
      }
      try {
        accessSync(p, constants.X_OK);
        return true;
      } catch {
        this.log.warn(`OEM post-install hook ${p} is not executable: not run`);
        return false;
      }
    });
    if (hook === undefined) return true;
    let slot: string;
    let usr: { source: string; options: string };
    try {
      const s = this.slots();
      if (typeof s === "string") throw new Error(s);
      const m = /^(USR|ROOT)-([AB])$/.exec(s.passive.label);
      if (!m) throw new Error(`partition ${s.passive.number} has PARTLABEL "${s.passive.label}", not USR-A or USR-B`);
      slot = m[2]!;
      usr = newUsrSource(s.disk, s.passive.number, gpt.partitionRange(gpt.readDisk(s.disk), s.passive.number));
    } catch (err) {
      this.log.error(`OEM post-install hook ${hook} not run: ${(err as Error).message}`);
      return false;
    }
    let mnt: string;
    try {
      mnt = mkdtempSync(join(tmpdir(), "au_postint_mount."));
    } catch (err) {
      this.log.error(`no mount point for the new USR: ${(err as Error).message}`);
      return false;
    }
    try {
      const mounted = await this.command(["mount", "-o", usr.options, usr.source, mnt]);
      if (mounted !== "") {
        this.log.error(`mounting the new USR (${usr.source}) read-only failed: ${mounted}`);
        return false;
      }
      this.log.info(`new USR ${usr.source} mounted read-only on ${mnt}`);
      try {
        return await this.runHook([hook, slot, mnt]);
      } finally {
        const unmounted = await this.command(["umount", mnt]);
        if (unmounted !== "") {
          // Still busy (a child of the hook inside it): detached now, gone once it is let go.
          this.log.warn(`unmounting ${mnt}: ${unmounted}; detaching it lazily`);
          await this.command(["umount", "-l", mnt]);
        }
      }
    } finally {
      try {
        rmdirSync(mnt);
      } catch (err) {
        this.log.warn(`${mnt}: ${(err as Error).message}`);
      }
    }
  }

  /** A short command (mount, umount): "" when it succeeded, else why not in one line. */
  private async command(argv: string[]): Promise<string> {
    const r = await runProgram(argv);
    return r.code === 0 ? "" : r.stderr.trim().replace(/\s*\n\s*/g, "; ") || `${argv[0]} exited with status ${r.code}`;
  }


  private async runHook(argv: string[]): Promise<boolean> {
    const hook = argv[0]!;
    this.log.info(`running OEM post-install hook: ${argv.join(" ")}`);
    let code: number | null;
    let signal: string | null;
    try {
      const proc = Bun.spawn(argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
      const kill = () => proc.kill("SIGTERM");
      this.abort.signal.addEventListener("abort", kill, { once: true });
      const emit = (line: string) => this.log.info(`oem-postinst: ${line}`);
      const output = Promise.all([streamLines(proc.stdout, emit), streamLines(proc.stderr, emit)]);
      await proc.exited;
      // A child the hook left running may hold its output open: its lines are still logged, but
      // the update does not wait for them.
      await Promise.race([output, Bun.sleep(1000)]);
      this.abort.signal.removeEventListener("abort", kill);
      code = proc.exitCode;
      signal = proc.signalCode === null ? null : String(proc.signalCode);
    } catch (err) {
      this.log.error(`OEM post-install hook ${hook} failed to start: ${(err as Error).message}`);
      return false;
    }
    if (code === 0) {
      this.log.info(`OEM post-install hook ${hook} succeeded`);
      return true;
    }
    this.log.error(`OEM post-install hook ${hook} failed (${signal ? `killed by ${signal}` : `exit status ${code}`}): the update is not switched to`);
    return false;
  }

}

/**
 * What `mount` reads the new USR from: its partition device on a block-device disk, else the
 * partition's byte range of the disk image through a loop device.
 */
export function newUsrSource(disk: string, n: number, range: { offset: number; length: number }, sysfs = SYSFS): { source: string; options: string } {
  if (!statSync(disk).isBlockDevice()) return { source: disk, options: `ro,loop,offset=${range.offset},sizelimit=${range.length}` };
  return { source: partitionPath(disk, n, sysfs), options: "ro" };
}

// update_engine's states and one update attempt's pipeline (spec §2.2, §2.3, §1.4) as a pure state
// machine: inputs in, effects out. The daemon (engine.ts) performs each effect and feeds its result
// back as the next input; nothing here touches the network, the disk or the clock.
import {
  ErrorFlag,
  EventResult,
  EventType,
  resultForError,
  withFlags,
  type CheckOutcome,
  type OmahaEvent,
  type UpdateOffer,
} from "../omaha/index.ts";
import { Operation, type Status } from "./status.ts";

/** Where the engine is; `op` of the status follows from it. */
export type Stage =
  | { kind: "idle" }
  | { kind: "checking"; interactive: boolean }
  | { kind: "announcing-download"; offer: UpdateOffer }
  /** UPDATE_AVAILABLE until the first bytes arrive, then DOWNLOADING (§2.2). */
  | { kind: "downloading"; offer: UpdateOffer; receiving: boolean }
  | { kind: "announcing-downloaded"; offer: UpdateOffer }
  | { kind: "finalizing"; offer: UpdateOffer }
  | { kind: "announcing-complete"; offer: UpdateOffer }
  | { kind: "need-reboot" }
  | { kind: "pinging" }
  | { kind: "reporting-error"; code: number; after: ScheduleHint };

/** What the next check's interval depends on (§2.4). */
export interface ScheduleHint {
  pollInterval?: number;
  httpStatus?: number;
}

export interface MachineState {
  stage: Stage;
  lastCheckedTime: number;
  progress: number;
  newVersion: string;
  newSize: number;
}

export const INITIAL: MachineState = { stage: { kind: "idle" }, lastCheckedTime: 0, progress: 0, newVersion: "0.0.0", newSize: 0 };

/** After a restart with the reboot marker present, the applied update still waits for the reboot. */
export const NEED_REBOOT_AT_START: MachineState = { ...INITIAL, stage: { kind: "need-reboot" }, progress: 1 };

export type Input =
  /** The scheduler's check (interactive=false) or AttemptUpdate (true). */
  | { type: "check"; interactive: boolean }
  /** The check's reply (payload backoff already applied: a deferred payload is error 40). */
  | { type: "checked"; outcome: CheckOutcome; httpStatus: number; now: number }
  | { type: "pinged" }
  /** A best-effort event request is done (delivered or not). */
  | { type: "event-sent" }
  | { type: "progress"; received: number; total: number }
  | { type: "downloaded" }
  /** Verified and switched: the new slot boots next. */
  | { type: "finalized" }
  /** The download, a verification or the switch failed with this code; `resumed` if the download had resumed. */
  | { type: "failed"; code: number; resumed: boolean }
  | { type: "reset" };

export type Effect =
  | { type: "send-check"; interactive: boolean }
  | { type: "send-ping"; interactive: boolean }
  | { type: "send-event"; event: OmahaEvent }
  | { type: "download"; offer: UpdateOffer }
  | { type: "finalize"; offer: UpdateOffer }
  | { type: "payload-failed"; offer: UpdateOffer; code: number }
  | { type: "payload-succeeded"; offer: UpdateOffer }
  | { type: "clear-reboot-marker" }
  | { type: "schedule"; hint: ScheduleHint };

export interface Step {
  state: MachineState;
  effects: Effect[];
  /** Set when the input was not accepted in this state (ResetStatus outside IDLE/NEED_REBOOT). */
  refused?: string;
}

/** Fixed for the life of the daemon: flags every reported error code carries. */
export interface MachineConfig {
  flags: ErrorFlag[];
}

export function operation(stage: Stage): Operation {
  switch (stage.kind) {
    case "idle":
      return Operation.Idle;
    case "checking":
      return Operation.CheckingForUpdate;
    case "announcing-download":
      return Operation.UpdateAvailable;
    case "downloading":
      return stage.receiving ? Operation.Downloading : Operation.UpdateAvailable;
    case "announcing-downloaded":
    case "finalizing":
    case "announcing-complete":
      return Operation.Finalizing;
    case "need-reboot":
    case "pinging":
      return Operation.UpdatedNeedReboot;
    case "reporting-error":
      return Operation.ReportingErrorEvent;
  }
}

export function statusOf(s: MachineState): Status {
  return {
    last_checked_time: s.lastCheckedTime,
    progress: s.progress,
    current_operation: operation(s.stage),
    new_version: s.newVersion,
    new_size: s.newSize,
  };
}

const event = (type: number, result: number): OmahaEvent => ({ type, result });

function errorEvent(code: number, flags: ErrorFlag[]): OmahaEvent {
  const wire = withFlags(code, flags);
  return { type: EventType.UpdateComplete, result: resultForError(code), errorCode: wire };
}

const same = (state: MachineState): Step => ({ state, effects: [] });

export function step(state: MachineState, input: Input, cfg: MachineConfig): Step {
  const st = state.stage;
  const to = (stage: Stage, patch: Partial<MachineState> = {}, effects: Effect[] = []): Step => ({
    state: { ...state, ...patch, stage },
    effects,
  });
  switch (input.type) {
    case "check":
      if (st.kind === "idle") return to({ kind: "checking", interactive: input.interactive }, {}, [{ type: "send-check", interactive: input.interactive }]);
      // Updated and waiting for the reboot: the server still hears from us, as a ping only.
      if (st.kind === "need-reboot") return to({ kind: "pinging" }, {}, [{ type: "send-ping", interactive: input.interactive }]);
      return same(state);

    case "checked": {
      if (st.kind !== "checking") return same(state);
      const o = input.outcome;
      const poll = o.pollInterval > 0 ? { pollInterval: o.pollInterval } : {};
      switch (o.kind) {
        case "noupdate":
          return to({ kind: "idle" }, { lastCheckedTime: input.now, progress: 0 }, [{ type: "schedule", hint: poll }]);
        case "update":
          return to(
            { kind: "announcing-download", offer: o.offer },
            { lastCheckedTime: input.now, progress: 0, newVersion: o.offer.version, newSize: o.offer.size },
            [{ type: "send-event", event: event(EventType.UpdateDownloadStarted, EventResult.Success) }],
          );
        case "error": {
          const hint: ScheduleHint = { ...poll, ...(input.httpStatus !== 200 ? { httpStatus: input.httpStatus } : {}) };
          return to({ kind: "reporting-error", code: o.code, after: hint }, {}, [{ type: "send-event", event: errorEvent(o.code, cfg.flags) }]);
        }
      }
      break;
    }

    case "pinged":
      if (st.kind !== "pinging") return same(state);
      return to({ kind: "need-reboot" }, {}, [{ type: "schedule", hint: {} }]);

    case "event-sent":
      switch (st.kind) {
        case "announcing-download":
          return to({ kind: "downloading", offer: st.offer, receiving: false }, {}, [{ type: "download", offer: st.offer }]);
        case "announcing-downloaded":
          return to({ kind: "finalizing", offer: st.offer }, {}, [{ type: "finalize", offer: st.offer }]);
        case "announcing-complete":
          return to({ kind: "need-reboot" }, { progress: 1 }, [{ type: "payload-succeeded", offer: st.offer }, { type: "schedule", hint: {} }]);
        case "reporting-error":
          return to({ kind: "idle" }, { progress: 0 }, [{ type: "schedule", hint: st.after }]);
        default:
          return same(state);
      }

    case "progress":
      if (st.kind !== "downloading" || input.total <= 0) return same(state);
      return to({ ...st, receiving: true }, { progress: Math.min(1, input.received / input.total) });

    case "downloaded":
      if (st.kind !== "downloading") return same(state);
      return to({ kind: "announcing-downloaded", offer: st.offer }, { progress: 1 }, [
        { type: "send-event", event: event(EventType.UpdateDownloadFinished, EventResult.Success) },
      ]);

    case "finalized":
      if (st.kind !== "finalizing") return same(state);
      return to({ kind: "announcing-complete", offer: st.offer }, {}, [{ type: "send-event", event: event(EventType.UpdateComplete, EventResult.Success) }]);

    case "failed": {
      if (st.kind !== "downloading" && st.kind !== "finalizing") return same(state);
      const flags = input.resumed ? [...cfg.flags, ErrorFlag.Resumed] : cfg.flags;
      return to({ kind: "reporting-error", code: input.code, after: {} }, {}, [
        { type: "payload-failed", offer: st.offer, code: input.code },
        { type: "send-event", event: errorEvent(input.code, flags) },
      ]);
    }

    case "reset":
      if (st.kind === "idle") return same(state);
      if (st.kind === "need-reboot") return to({ kind: "idle" }, { progress: 0 }, [{ type: "clear-reboot-marker" }]);
      return { state, effects: [], refused: `ResetStatus is not allowed while ${operation(st)}` };
  }
}

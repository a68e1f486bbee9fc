// The engine's pure state machine: each input's new status and effects, whole attempts as tables
// (success, every failure point, no update, HTTP errors), ping-only after an update, reset.
import { describe, expect, test } from "bun:test";
import { ErrorFlag, type CheckOutcome, type UpdateOffer } from "../../internal/omaha/index.ts";
import { INITIAL, NEED_REBOOT_AT_START, operation, statusOf, step, type Effect, type Input, type MachineState } from "../../internal/update/machine.ts";

const OFFER: UpdateOffer = {
  version: "2.0.0",
  urls: ["http://u/p.gz"],
  packageName: "p.gz",
  size: 1000,
  sha256: "abc=",
  isDeltaPayload: false,
  disablePayloadBackoff: true,
  maxFailureCountPerUrl: 10,
  packages: [],
};
const CFG = { flags: [ErrorFlag.TestOmahaUrl] };
const T = 1_700_000_000;

/** Runs inputs from a state; returns every (operation, effect types) pair and the final state. */
function run(inputs: Input[], from: MachineState = INITIAL) {
  let s = from;
  const trace: [string, string[]][] = [];
  const effects: Effect[] = [];
  for (const i of inputs) {
    const r = step(s, i, CFG);
    s = r.state;
    effects.push(...r.effects);
    trace.push([operation(s.stage).replace("UPDATE_STATUS_", ""), r.effects.map((e) => (e.type === "send-event" ? `event ${e.event.type}/${e.event.result}${e.event.errorCode !== undefined ? `/${e.event.errorCode}` : ""}` : e.type))]);
  }
  return { state: s, trace, effects };
}

const checked = (outcome: CheckOutcome, httpStatus = 200): Input => ({ type: "checked", outcome, httpStatus, now: T });

describe("one attempt", () => {
  test("a successful update: the §1.4 sequence and statuses", () => {
    const r = run([
      { type: "check", interactive: false },
      checked({ kind: "update", pollInterval: 0, offer: OFFER }),
      { type: "event-sent" },
      { type: "progress", received: 0, total: 1000 },
      { type: "progress", received: 500, total: 1000 },
      { type: "downloaded" },
      { type: "event-sent" },
      { type: "finalized" },
      { type: "event-sent" },
    ]);
    expect(r.trace).toEqual([
      ["CHECKING_FOR_UPDATE", ["send-check"]],
      ["UPDATE_AVAILABLE", ["event 13/1"]],
      ["UPDATE_AVAILABLE", ["download"]],
      ["DOWNLOADING", []],
      ["DOWNLOADING", []],
      ["FINALIZING", ["event 14/1"]],
      ["FINALIZING", ["finalize"]],
      ["FINALIZING", ["event 3/1"]],
      ["UPDATED_NEED_REBOOT", ["payload-succeeded", "schedule"]],
    ]);
    expect(statusOf(r.state)).toEqual({ last_checked_time: T, progress: 1, current_operation: "UPDATE_STATUS_UPDATED_NEED_REBOOT", new_version: "2.0.0", new_size: 1000 });
  });

  test("progress is the fraction received", () => {
    const r = run([{ type: "check", interactive: true }, checked({ kind: "update", pollInterval: 0, offer: OFFER }), { type: "event-sent" }, { type: "progress", received: 250, total: 1000 }]);
    expect(r.state.progress).toBe(0.25);
    expect(r.effects[0]).toEqual({ type: "send-check", interactive: true });
  });

  test("no update: back to idle, last checked time set, next check scheduled with the server's PollInterval", () => {
    const r = run([{ type: "check", interactive: false }, checked({ kind: "noupdate", pollInterval: 3600 })]);
    expect(r.trace.at(-1)).toEqual(["IDLE", ["schedule"]]);
    expect(r.effects.at(-1)).toEqual({ type: "schedule", hint: { pollInterval: 3600 } });
    expect(r.state.lastCheckedTime).toBe(T);
  });

  test.each<[string, Input[], string, { httpStatus?: number }]>([
    ["HTTP 503 on the check", [checked({ kind: "error", code: 2503, message: "", pollInterval: 0 }, 503)], `event 3/0/${2503 | ErrorFlag.TestOmahaUrl}`, { httpStatus: 503 }],
    ["no answer at all", [checked({ kind: "error", code: 2000, message: "", pollInterval: 0 }, 0)], `event 3/0/${2000 | ErrorFlag.TestOmahaUrl}`, { httpStatus: 0 }],
    ["malformed XML", [checked({ kind: "error", code: 31, message: "", pollInterval: 0 })], `event 3/0/${31 | ErrorFlag.TestOmahaUrl}`, {}],
    ["payload backoff (deferred)", [checked({ kind: "error", code: 40, message: "", pollInterval: 0 })], `event 3/9/${40 | ErrorFlag.TestOmahaUrl}`, {}],
  ])("%s: one error event, then idle and a schedule with the hint", (_n, inputs, ev, hint) => {
    const r = run([{ type: "check", interactive: false }, ...inputs, { type: "event-sent" }]);
    expect(r.trace.slice(1)).toEqual([
      ["REPORTING_ERROR_EVENT", [ev]],
      ["IDLE", ["schedule"]],
    ]);
    expect(r.effects.at(-1)).toEqual({ type: "schedule", hint });
    expect(r.state.lastCheckedTime).toBe(0);
  });

  test.each([
    ["download fails (hash)", [{ type: "failed", code: 10, resumed: false }], 10 | ErrorFlag.TestOmahaUrl],
    ["download fails after a resume", [{ type: "failed", code: 9, resumed: true }], 9 | ErrorFlag.TestOmahaUrl | ErrorFlag.Resumed],
    ["switch fails", [{ type: "downloaded" }, { type: "event-sent" }, { type: "failed", code: 5, resumed: false }], 5 | ErrorFlag.TestOmahaUrl],
  ] as [string, Input[], number][])("%s: payload-failed, error event, idle", (_n, inputs, code) => {
    const r = run([{ type: "check", interactive: false }, checked({ kind: "update", pollInterval: 0, offer: OFFER }), { type: "event-sent" }, ...inputs, { type: "event-sent" }]);
    expect(r.trace.at(-2)).toEqual(["REPORTING_ERROR_EVENT", ["payload-failed", `event 3/0/${code}`]]);
    expect(r.trace.at(-1)).toEqual(["IDLE", ["schedule"]]);
    expect(r.effects.find((e) => e.type === "payload-failed")).toEqual({ type: "payload-failed", offer: OFFER, code: inputs.at(-1)!.type === "failed" ? (inputs.at(-1) as { code: number }).code : 0 });
  });
});

describe("around attempts", () => {
  test("a check while busy is ignored", () => {
    const busy = run([{ type: "check", interactive: false }]).state;
    expect(step(busy, { type: "check", interactive: true }, CFG)).toEqual({ state: busy, effects: [] });
  });

  test("waiting for a reboot: checks become pings and the status stays", () => {
    const r = run([{ type: "check", interactive: false }, { type: "pinged" }], NEED_REBOOT_AT_START);
    expect(r.trace).toEqual([
      ["UPDATED_NEED_REBOOT", ["send-ping"]],
      ["UPDATED_NEED_REBOOT", ["schedule"]],
    ]);
  });

  test("ResetStatus: a no-op when idle, back to idle from need-reboot, refused otherwise", () => {
    expect(step(INITIAL, { type: "reset" }, CFG)).toEqual({ state: INITIAL, effects: [] });
    const r = step(NEED_REBOOT_AT_START, { type: "reset" }, CFG);
    expect(operation(r.state.stage)).toBe("UPDATE_STATUS_IDLE");
    expect(r.effects).toEqual([{ type: "clear-reboot-marker" }]);
    const busy = run([{ type: "check", interactive: false }]).state;
    expect(step(busy, { type: "reset" }, CFG).refused).toBe("ResetStatus is not allowed while UPDATE_STATUS_CHECKING_FOR_UPDATE");
  });

  test("stray results in the wrong state change nothing", () => {
    for (const i of [{ type: "downloaded" }, { type: "finalized" }, { type: "event-sent" }, { type: "pinged" }, { type: "failed", code: 1, resumed: false }, checked({ kind: "noupdate", pollInterval: 0 })] as Input[]) {
      expect(step(INITIAL, i, CFG)).toEqual({ state: INITIAL, effects: [] });
    }
  });

  test("the initial status is IDLE with version 0.0.0", () => {
    expect(statusOf(INITIAL)).toEqual({ last_checked_time: 0, progress: 0, current_operation: "UPDATE_STATUS_IDLE", new_version: "0.0.0", new_size: 0 });
  });
});

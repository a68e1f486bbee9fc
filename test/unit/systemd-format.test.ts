// The supervisor CLI's systemctl-like text.
import { describe, expect, test } from "bun:test";
import { formatAgo, formatJournalLine, formatList, formatShow, formatStatus, formatTimestamp } from "../../internal/systemd/format.ts";
import { parseShow } from "../../internal/systemd/systemctl.ts";
import type { UnitStatus } from "../../internal/systemd/manager.ts";

const T = Date.UTC(2026, 10, 22, 2, 41, 18);

describe("format", () => {
  test("timestamps and relative times", () => {
    expect(formatTimestamp(T)).toBe("Sun 2026-11-22 02:41:18 UTC");
    const cases: [number, string][] = [[5_000, "5s ago"], [123_000, "2min 3s ago"], [3_720_000, "1h 2min ago"], [86_400_000, "1 day ago"], [3 * 86_400_000, "3 days ago"]];
    for (const [d, want] of cases) expect(formatAgo(T, T + d)).toBe(want);
  });

  test("journal lines in journalctl's short format", () => {
    expect(formatJournalLine({ seq: 1, time: T, ident: "sh", pid: 42, message: "hello" }, "node1")).toBe("Nov 22 02:41:18 node1 sh[42]: hello");
  });

  test("status of a running unit", () => {
    const text = formatStatus(
      { name: "web.service", load: "loaded", active: "active", sub: "running", description: "Web", path: "/etc/systemd/system/web.service", enabled: "enabled", mainPid: 42, since: T, restarts: 2 },
      [{ seq: 1, time: T, ident: "web", pid: 42, message: "up" }],
      "node1",
      T + 5000,
    );
    expect(text).toBe(
      [
        "● web.service - Web",
        "     Loaded: loaded (/etc/systemd/system/web.service; enabled)",
        "     Active: active (running) since Sun 2026-11-22 02:41:18 UTC; 5s ago",
        "   Main PID: 42",
        "   Restarts: 2",
        "",
        "Nov 22 02:41:18 node1 web[42]: up",
        "",
      ].join("\n"),
    );
  });

  test("status of a failed, a masked and an unknown unit", () => {
    const failed = formatStatus({ name: "a.service", load: "loaded", active: "failed", sub: "failed", result: "exit-code", path: "/p", lastExit: { pid: 7, status: "code=exited, status=1/FAILURE" } }, [], "h", T);
    expect(failed).toContain("× a.service\n");
    expect(failed).toContain("Active: failed (Result: exit-code)\n");
    expect(failed).toContain("Process: 7 ExecStart (code=exited, status=1/FAILURE)");
    expect(formatStatus({ name: "m.service", load: "masked", active: "inactive", sub: "dead" }, [], "h", T)).toContain("Loaded: masked (Reason: Unit m.service is masked.)");
    expect(formatStatus({ name: "n.service", load: "not-found", active: "inactive", sub: "dead" }, [], "h", T)).toContain("○ n.service\n");
  });

  test("list-units table", () => {
    expect(
      formatList([
        { name: "a.service", load: "loaded", active: "active", sub: "running", description: "A" },
        { name: "longer-name.service", load: "not-found", active: "inactive", sub: "dead" },
      ]),
    ).toBe(
      [
        "  UNIT                LOAD      ACTIVE   SUB     DESCRIPTION",
        "  a.service           loaded    active   running A",
        "  longer-name.service not-found inactive dead",
        "",
        "2 units listed.",
        "",
      ].join("\n"),
    );
  });

  test("show: systemctl's properties, -p picks, --value strips, parseShow reads it back", () => {
    const st: UnitStatus = { name: "a.service", load: "loaded", active: "active", sub: "running", description: "A", result: "success", mainPid: 42, restarts: 1, path: "/etc/systemd/system/a.service", enabled: "enabled" };
    const text = formatShow(st);
    expect(text).toContain("MainPID=42\nExecMainPID=0\nNRestarts=1\n");
    expect(parseShow("a.service", text)).toEqual(st);
    expect(formatShow(st, ["ActiveState", "SubState"])).toBe("ActiveState=active\nSubState=running\n");
    expect(formatShow(st, ["SubState", "Bogus"], true)).toBe("running\n\n");
  });
});

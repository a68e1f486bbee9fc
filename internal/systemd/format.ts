// systemctl-like text for the supervisor's CLI: `status`, `list-units`, `journalctl` short lines.
import type { UnitStatus } from "./manager.ts";
import type { JournalEntry } from "./control.ts";

const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const pad = (n: number) => String(n).padStart(2, "0");

/** `Sun 2026-11-22 02:41:18 UTC` (systemctl's timestamp, in UTC). */
export function formatTimestamp(ms: number): string {
  const d = new Date(ms);
  return `${DAYS[d.getUTCDay()]} ${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
}

/** `5s ago`, `2min 3s ago`, `1h 2min ago`, `3 days ago` (systemd's relative time, coarsened). */
export function formatAgo(ms: number, now: number): string {
  let s = Math.max(0, Math.floor((now - ms) / 1000));
  if (s < 60) return `${s}s ago`;
  const d = Math.floor(s / 86400);
  if (d > 0) return `${d} day${d === 1 ? "" : "s"} ago`;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  return h > 0 ? `${h}h ${m}min ago` : `${m}min ${s}s ago`;
}

/** journalctl's short format: `Nov 22 02:41:18 host ident[pid]: message`. */
export function formatJournalLine(e: JournalEntry, host: string): string {
  const d = new Date(e.time);
  return `${MONTHS[d.getUTCMonth()]} ${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} ${host} ${e.ident}[${e.pid}]: ${e.message}`;
}

/** The head of `systemctl status UNIT` followed by the newest journal lines. */
export function formatStatus(s: UnitStatus, journal: JournalEntry[], host: string, now: number): string {
  const dot = s.active === "active" || s.active === "reloading" ? "●" : s.active === "failed" ? "×" : "○";
  const lines = [`${dot} ${s.name}${s.description && s.description !== s.name ? ` - ${s.description}` : ""}`];
  if (s.load === "loaded") lines.push(`     Loaded: loaded (${s.path ?? "?"}${s.enabled ? `; ${s.enabled}` : ""})`);
  else if (s.load === "masked") lines.push(`     Loaded: masked (Reason: Unit ${s.name} is masked.)`);
  else if (s.load === "error") lines.push(`     Loaded: error (Reason: Unit ${s.name} has a bad unit file setting.)`);
  else lines.push(`     Loaded: not-found (Reason: Unit ${s.name} not found.)`);
  let active = `${s.active} (${s.sub})`;
  if (s.active === "failed" && s.result) active = `failed (Result: ${s.result})`;
  if (s.since) active += ` since ${formatTimestamp(s.since)}; ${formatAgo(s.since, now)}`;
  lines.push(`     Active: ${active}`);
  if (s.mainPid !== undefined) lines.push(`   Main PID: ${s.mainPid}`);
  else if (s.lastExit) lines.push(`    Process: ${s.lastExit.pid ?? "-"} ExecStart (${s.lastExit.status})`);
  if (s.restarts) lines.push(`   Restarts: ${s.restarts}`);
  if (journal.length > 0) lines.push("", ...journal.map((e) => formatJournalLine(e, host)));
  return `${lines.join("\n")}\n`;
}

/** `systemctl list-units`: a column table, the legend's count at the end. */
export function formatList(units: UnitStatus[]): string {
  const rows = units.map((u) => [u.name, u.load, u.active, u.sub, u.description ?? ""]);
  const head = ["UNIT", "LOAD", "ACTIVE", "SUB", "DESCRIPTION"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]) => `  ${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join(" ")}`.trimEnd();
  return `${[fmt(head), ...rows.map(fmt)].join("\n")}\n\n${units.length} unit${units.length === 1 ? "" : "s"} listed.\n`;
}

/** `systemctl show` properties of a status, in systemctl's order; `props` picks some (-p). */
export function formatShow(s: UnitStatus, props: string[] = [], valueOnly = false): string {
  const all: [string, string][] = [
    ["Id", s.name],
    ["Description", s.description ?? s.name],
    ["LoadState", s.load],
    ["ActiveState", s.active],
    ["SubState", s.sub],
    ["Result", s.result ?? "success"],
    ["MainPID", String(s.mainPid ?? 0)],
    ["ExecMainPID", String(s.lastExit?.pid ?? 0)],
    ["NRestarts", String(s.restarts ?? 0)],
    ["FragmentPath", s.path ?? ""],
    ["UnitFileState", s.enabled ?? ""],
    ["StateChangeTimestamp", s.since ? formatTimestamp(s.since) : ""],
  ];
  const chosen = props.length === 0 ? all : props.map((p): [string, string] => [p, all.find(([k]) => k === p)?.[1] ?? ""]);
  return chosen.map(([k, v]) => `${valueOnly ? v : `${k}=${v}`}\n`).join("");
}

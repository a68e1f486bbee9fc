// What update_engine_client prints (spec §2.6): the -status block, -watch_for_updates' lines, and
// the progress bar -update draws on a terminal.
import type { Status } from "./status.ts";

/** The -status block, exactly as the original prints it (PROGRESS with %f). */
export function formatStatusBlock(s: Status): string {
  return (
    `LAST_CHECKED_TIME=${Math.trunc(s.last_checked_time)}\n` +
    `PROGRESS=${s.progress.toFixed(6)}\n` +
    `CURRENT_OP=${s.current_operation}\n` +
    `NEW_VERSION=${s.new_version}\n` +
    `NEW_SIZE=${Math.trunc(s.new_size)}\n`
  );
}

/** One StatusUpdate as -watch_for_updates reports it. */
export function watchLines(s: Status): string {
  return (
    `Got status update:\n` +
    `  last_checked_time: ${s.last_checked_time}\n` +
    `  progress: ${s.progress}\n` +
    `  current_operation: ${s.current_operation}\n` +
    `  new_version: ${s.new_version}\n` +
    `  new_size: ${s.new_size}\n`
  );
}

const WIDTH = 30;

/** A one-line bar, redrawn in place with "\r": `[#########.....]  45% UPDATE_STATUS_DOWNLOADING 4152.2.0`. */
export function progressBar(s: Status): string {
  const p = Math.max(0, Math.min(1, s.progress));
  const filled = Math.round(p * WIDTH);
  const op = s.current_operation.replace(/^UPDATE_STATUS_/, "");
  return `[${"#".repeat(filled)}${".".repeat(WIDTH - filled)}] ${String(Math.floor(p * 100)).padStart(3)}% ${op.padEnd(22)} ${s.new_version}`;
}

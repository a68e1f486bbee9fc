// One logger for every daemon: consola, one line a fact, to stderr so stdout stays the tool's output.
import { createConsola, type ConsolaInstance } from "consola";

export const log: ConsolaInstance = createConsola({
  level: Number(process.env.COREOS_LOG_LEVEL ?? 3),
  stdout: process.stderr,
  stderr: process.stderr,
  fancy: false,
  formatOptions: { date: true, colors: false, compact: true },
});

export function logger(tag: string): ConsolaInstance {
  return log.withTag(tag);
}

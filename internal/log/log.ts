// One logger for every daemon: consola with a one-line reporter on stderr (stdout stays the tool's
// output), in etcd's capnslog shape: `<time> <level letter> | <tag>: <message>`.
import { createConsola, type ConsolaInstance, type LogObject } from "consola";

const LETTER: Record<number, string> = { 0: "E", 1: "W", 2: "N", 3: "I", 4: "D", 5: "T" };

function oneLine(o: LogObject): string {
  const text = o.args.map((a) => (a instanceof Error ? a.message : typeof a === "string" ? a : JSON.stringify(a))).join(" ");
  const tag = o.tag ? `${o.tag}: ` : "";
  return `${o.date.toISOString()} ${LETTER[o.level] ?? "I"} | ${tag}${text.replaceAll("\n", " ")}\n`;
}

export const log: ConsolaInstance = createConsola({
  level: Number(process.env.COREOS_LOG_LEVEL ?? 3),
  reporters: [{ log: (o) => void process.stderr.write(oneLine(o)) }],
});

export function logger(tag: string): ConsolaInstance {
  return log.withTag(tag);
}

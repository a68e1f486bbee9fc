// A/B selection on a table, pure: GRUB's gptprio.next (§4.3), Flatcar cgpt's prioritize (§4.5),
// postinst's switch (§4.4) and setgoodroot (§4.6). Each returns a new table; disk.ts writes it.
import { encodeAttrs, type BootAttrs } from "./attrs.ts";
import { partition, type Partition, type Table } from "./codec.ts";
import { GptError } from "./errors.ts";
import { TYPE } from "./guid.ts";


export function isUsr(p: Partition): boolean {
  return p.type === TYPE.usr;
}

export function usrPartitions(t: Table): Partition[] {
  return t.partitions.filter(isUsr);
}

export function partitionByNumber(t: Table, n: number): Partition {
  const p = t.partitions.find((x) => x.number === n);
  if (!p) throw new GptError(`partition ${n} does not exist`);
  return p;
}

export function partitionByUuid(t: Table, uuid: string): Partition | undefined {
  const u = uuid.toUpperCase();
  return t.partitions.find((p) => p.uuid === u);
}

/** Byte range of partition `n`, where a payload is written. */
export function partitionRange(t: Table, n: number): { offset: number; length: number } {
  const p = partitionByNumber(t, n);
  return { offset: p.firstLba * t.sectorSize, length: (p.lastLba - p.firstLba + 1) * t.sectorSize };
}

export function withAttrs(t: Table, n: number, set: Partial<BootAttrs>): Table {
  const p = partitionByNumber(t, n);
  return replace(t, [partition(n, { ...p, attributes: encodeAttrs(p.attributes, set) })]);
}

function replace(t: Table, changed: Partition[]): Table {
  const by = new Map(changed.map((p) => [p.number, p]));
  return { ...t, partitions: t.partitions.map((p) => by.get(p.number) ?? p) };
}

/**
 * gptprio.next's choice: among USR entries with priority > 0 that are successful or have tries
 * left, the highest priority; a tie goes to the lower partition number (GRUB scans in order and
 * only takes a strictly higher priority).
 */
export function choose(t: Table, candidate: (p: Partition) => boolean = isUsr): Partition | null {
  let found: Partition | null = null;
  for (const p of t.partitions) {
    if (!candidate(p)) continue;
    if ((p.tries > 0 || p.successful) && p.priority > (found?.priority ?? 0)) found = p;
  }
  return found;
}

/** The boot-time step: choose, and spend one try of the chosen entry if it has any. */
export function nextTable(t: Table): { chosen: Partition; table: Table } | null {
  const chosen = choose(t);
  if (!chosen) return null;
  if (chosen.tries === 0) return { chosen, table: t };
  const table = withAttrs(t, chosen.number, { tries: chosen.tries - 1 });
  return { chosen: partitionByNumber(table, chosen.number), table };
}

export interface PrioritizeOptions {
  /** Which entries take part (Flatcar: the USR type; upstream cgpt: the ChromeOS kernel type). */
  candidate?: (p: Partition) => boolean;
  /** cgpt -P: the top priority to assign (default the number of groups, at most 15). */
  maxPriority?: number;
  /** cgpt -f: move the target's whole priority group along with it. */
  friends?: boolean;
}

/**
 * cgpt prioritize: group the candidates by priority, put the target (with -f its group) in a new
 * top group, drop a trailing priority-0 group (nothing is ever raised from 0 except the target),
 * and hand out priorities from the top down, never below 1. Without a target it only compacts.
 */
export function prioritizeTable(t: Table, target: number | null, o: PrioritizeOptions = {}): Table {
  const candidate = o.candidate ?? isUsr;
  if (target !== null && !candidate(partitionByNumber(t, target)))
    throw new GptError(`partition ${target} is not a USR partition`);
  if (o.maxPriority !== undefined && (o.maxPriority < 1 || o.maxPriority > 15))
    throw new GptError(`priority must be 1-15, not ${o.maxPriority}`);
  const parts = t.partitions.filter(candidate);
  if (parts.length === 0) return t;
  const TOP = 99;
  const origPriority = target === null ? null : partitionByNumber(t, target).priority;
  // Groups in first-seen order, as cgpt builds them; the sort below is stable like its bubble sort.
  const groups: { priority: number; parts: Partition[] }[] = [];
  const add = (priority: number, p: Partition) => {
    const g = groups.find((x) => x.priority === priority);
    if (g) g.parts.push(p);
    else groups.push({ priority, parts: [p] });
  };
  for (const p of parts) {
    if (p.number === target) add(o.friends ? p.priority : TOP, p);
    else add(p.priority, p);
  }
  if (o.friends && origPriority !== null) for (const g of groups) if (g.priority === origPriority) g.priority = TOP;
  groups.sort((a, b) => b.priority - a.priority);
  if (groups.at(-1)!.priority === 0) groups.pop();
  let priority = o.maxPriority ?? Math.min(groups.length, 15);
  const changed: Partition[] = [];
  for (const g of groups) {
    for (const p of g.parts) changed.push(partition(p.number, { ...p, attributes: encodeAttrs(p.attributes, { priority }) }));
    if (priority > 1) priority--;
  }
  return replace(t, changed);
}

/** flatcar-postinst on the freshly written slot: `cgpt add -S0 -T1`, then `cgpt prioritize`. */
export function switchTable(t: Table, n: number): Table {
  if (!isUsr(partitionByNumber(t, n))) throw new GptError(`partition ${n} is not a USR partition`);
  return prioritizeTable(withAttrs(t, n, { successful: false, tries: 1 }), n);
}

/** setgoodroot on the running slot: `cgpt add -S1 -T0`, then `cgpt prioritize`. */
export function markGoodTable(t: Table, n: number): Table {
  if (!isUsr(partitionByNumber(t, n))) throw new GptError(`partition ${n} is not a USR partition`);
  return prioritizeTable(withAttrs(t, n, { successful: true, tries: 0 }), n);
}

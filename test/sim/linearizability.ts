// Linearizability of a history of register operations (write, compare-and-swap, read), checked
// per key (registers compose: a history is linearizable iff each key's sub-history is) with the
// Wing & Gong search and Lowe's memoisation of (linearized set, state). The search is bounded: a
// key that exhausts the budget is reported as inconclusive rather than failed.

export interface HistoryOp {
  id: number;
  client: number;
  key: string;
  kind: "write" | "cas" | "read";
  /** The value written (write, cas). */
  value?: number;
  /** The value a cas expects (null: absent). */
  expect?: number | null;
  /** Whether the cas took effect; undefined while or if unknown. */
  ok?: boolean;
  /** What a read returned. */
  out?: number | null;
  /** Invocation and response as positions in one global event order; ret is Infinity if unknown. */
  call: number;
  ret: number;
}

export type LinResult =
  | { ok: true; inconclusive: string[] }
  /** history: the shortest failing prefix of the key's history, by invocation. */
  | { ok: false; key: string; history: HistoryOp[] };

type State = number | null;

/** The register after op, or undefined if op cannot happen in this state. */
function stepModel(s: State, op: HistoryOp): State | undefined {
  switch (op.kind) {
    case "write":
      return op.value!;
    case "read":
      return s === op.out ? s : undefined;
    case "cas":
      if (op.ok === true) return s === op.expect ? op.value! : undefined;
      if (op.ok === false) return s !== op.expect ? s : undefined;
      // Unknown outcome: it happened (with whatever result the state dictates) or, placed last, never mattered.
      return s === op.expect ? op.value! : s;
  }
}

interface Cell {
  op: HistoryOp | null;
  bit: number;
  call: boolean;
  match: Cell | null;
  prev: Cell | null;
  next: Cell | null;
}

export type KeyVerdict = "ok" | "fail" | "unknown";

export function checkKey(ops: HistoryOp[], maxSteps: number): KeyVerdict {
  const events: { t: number; call: boolean; i: number }[] = [];
  ops.forEach((op, i) => {
    events.push({ t: op.call, call: true, i });
    events.push({ t: op.ret, call: false, i });
  });
  // Infinity - Infinity is NaN (falsy): unknown responses keep their relative order.
  events.sort((a, b) => a.t - b.t || (a.call === b.call ? 0 : a.call ? 1 : -1));

  const head: Cell = { op: null, bit: -1, call: false, match: null, prev: null, next: null };
  const callCell: Cell[] = [];
  const retCell: Cell[] = [];
  let tail = head;
  for (const ev of events) {
    const cell: Cell = { op: ops[ev.i]!, bit: ev.i, call: ev.call, match: null, prev: tail, next: null };
    tail.next = cell;
    tail = cell;
    (ev.call ? callCell : retCell)[ev.i] = cell;
  }
  ops.forEach((_, i) => {
    callCell[i]!.match = retCell[i]!;
  });

  const lift = (c: Cell) => {
    c.prev!.next = c.next;
    if (c.next) c.next.prev = c.prev;
    const m = c.match!;
    m.prev!.next = m.next;
    if (m.next) m.next.prev = m.prev;
  };
  const unlift = (c: Cell) => {
    const m = c.match!;
    m.prev!.next = m;
    if (m.next) m.next.prev = m;
    c.prev!.next = c;
    c.next!.prev = c;
  };

  const bits = new Uint16Array(Math.ceil(ops.length / 16) + 1);
  const cache = new Set<string>();
  const stack: { cell: Cell; state: State }[] = [];
  let state: State = null;
  let entry = head.next;
  let steps = 0;
  while (head.next !== null) {
    if (++steps > maxSteps) return "unknown";
    const cell = entry!;
    if (cell.call) {
      const next = stepModel(state, cell.op!);
      if (next !== undefined) {
        bits[cell.bit >> 4]! |= 1 << (cell.bit & 15);
        const key = `${String.fromCharCode(...bits)}|${next}`;
        if (!cache.has(key)) {
          cache.add(key);
          stack.push({ cell, state });
          state = next;
          lift(cell);
          entry = head.next;
          continue;
        }
        bits[cell.bit >> 4]! &= ~(1 << (cell.bit & 15));
      }
      entry = cell.next;
    } else {
      // An operation returned before we could place it: undo the last choice.
      const top = stack.pop();
      if (!top) return "fail";
      state = top.state;
      bits[top.cell.bit >> 4]! &= ~(1 << (top.cell.bit & 15));
      unlift(top.cell);
      entry = top.cell.next;
    }
  }
  return "ok";
}

/**
 * The history as it stood at time t: later invocations are dropped, responses after t are not
 * known yet (reads without one tell nothing and go).
 */
function cutAt(ops: HistoryOp[], t: number): HistoryOp[] {
  const out: HistoryOp[] = [];
  for (const op of ops) {
    if (op.call > t) continue;
    if (op.ret <= t) out.push(op);
    else if (op.kind !== "read") out.push({ ...op, ret: Infinity, ok: undefined } as HistoryOp);
  }
  return out;
}

/** The shortest prefix (in time) of a failing key's history that already fails: where to look. */
function shortestFailingPrefix(ops: HistoryOp[], maxSteps: number): HistoryOp[] {
  const rets = ops.map((op) => op.ret).filter((t) => t !== Infinity).sort((a, b) => a - b);
  let lo = 0;
  let hi = rets.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (checkKey(cutAt(ops, rets[mid]!), maxSteps) === "fail") hi = mid;
    else lo = mid + 1;
  }
  return cutAt(ops, rets[lo] ?? Infinity).sort((a, b) => a.call - b.call);
}

export function checkHistory(ops: HistoryOp[], maxStepsPerKey = 2_000_000): LinResult {
  const byKey = new Map<string, HistoryOp[]>();
  for (const op of ops) {
    let list = byKey.get(op.key);
    if (!list) byKey.set(op.key, (list = []));
    list.push(op);
  }
  const inconclusive: string[] = [];
  for (const [key, list] of [...byKey].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const v = checkKey(list, maxStepsPerKey);
    if (v === "fail") return { ok: false, key, history: shortestFailingPrefix(list, maxStepsPerKey) };
    if (v === "unknown") inconclusive.push(key);
  }
  return { ok: true, inconclusive };
}

export function describeOp(op: HistoryOp): string {
  const ret = op.ret === Infinity ? "?" : String(op.ret);
  switch (op.kind) {
    case "write":
      return `[${op.call},${ret}] c${op.client} write(${op.key}, ${op.value})`;
    case "read":
      return `[${op.call},${ret}] c${op.client} read(${op.key}) -> ${op.out}`;
    case "cas":
      return `[${op.call},${ret}] c${op.client} cas(${op.key}, ${op.expect} -> ${op.value}) = ${op.ok ?? "?"}`;
  }
}

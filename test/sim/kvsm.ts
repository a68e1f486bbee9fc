// The replicated state machine the simulated clients use: registers keyed by string, with
// write and compare-and-swap. Values are numbers, unique per write, so histories stay checkable.
import type { Entry } from "../../internal/raft/types.ts";

export type Command =
  | { id: number; kind: "write"; key: string; value: number }
  | { id: number; kind: "cas"; key: string; expect: number | null; value: number };

export interface ApplyResult {
  id: number;
  ok: boolean;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export const encodeCommand = (c: Command): Uint8Array => encoder.encode(JSON.stringify(c));

/** FNV-1a over the bytes, chained from h. */
export function fnv(h: number, bytes: Uint8Array): number {
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193) >>> 0;
  return h;
}

interface SnapshotData {
  index: number;
  hash: number;
  kv: [string, number][];
  seen: number[];
}

export class KvStateMachine {
  kv = new Map<string, number>();
  /** Command IDs already applied: a duplicated proposal (retransmitted MsgProp) applies once. */
  seen = new Set<number>();
  /** Chained hash of every entry applied, to compare replicas' histories cheaply. */
  hash = 0x811c9dc5;
  appliedIndex = 0;

  static restore(data: Uint8Array): KvStateMachine {
    const sm = new KvStateMachine();
    const d = JSON.parse(decoder.decode(data)) as SnapshotData;
    sm.kv = new Map(d.kv);
    sm.seen = new Set(d.seen);
    sm.hash = d.hash;
    sm.appliedIndex = d.index;
    return sm;
  }

  snapshot(): Uint8Array {
    const d: SnapshotData = { index: this.appliedIndex, hash: this.hash, kv: [...this.kv], seen: [...this.seen] };
    return encoder.encode(JSON.stringify(d));
  }

  /** Applies a normal entry; the command's result, or null for no-ops and duplicates. */
  apply(e: Entry): ApplyResult | null {
    if (e.index !== this.appliedIndex + 1) throw new Error(`apply gap: applied ${this.appliedIndex}, got ${e.index}`);
    this.appliedIndex = e.index;
    this.hash = fnv(fnv(this.hash, Uint8Array.of(e.type)), e.data);
    if (e.type !== 0 || e.data.length === 0) return null;
    const c = JSON.parse(decoder.decode(e.data)) as Command;
    if (this.seen.has(c.id)) return null;
    this.seen.add(c.id);
    if (c.kind === "write") {
      this.kv.set(c.key, c.value);
      return { id: c.id, ok: true };
    }
    const cur = this.kv.get(c.key) ?? null;
    if (cur !== c.expect) return { id: c.id, ok: false };
    this.kv.set(c.key, c.value);
    return { id: c.id, ok: true };
  }

  get(key: string): number | null {
    return this.kv.get(key) ?? null;
  }
}

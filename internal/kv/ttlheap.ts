// Min-heap of expiration times with lazy deletion: entries are never removed when a node is
// deleted, replaced or gets a new TTL; they are recognised as stale when they reach the top.
import type { Node } from "./node.ts";

export interface TtlEntry {
  at: number;
  key: string;
  node: Node;
}

/** Equal times break ties by key so every replica (and a restored one) expires in the same order. */
function less(a: TtlEntry, b: TtlEntry): boolean {
  return a.at < b.at || (a.at === b.at && a.key < b.key);
}

export class TtlHeap {
  private h: TtlEntry[] = [];
  private compactAt = 1024;

  /** `live(e)`: the entry's node is still in the tree at e.key with expireAt e.at. */
  constructor(private readonly live: (e: TtlEntry) => boolean) {}

  get length(): number {
    return this.h.length;
  }

  /** Every entry, in no particular order (to rebuild a heap over the same nodes). */
  forEach(f: (at: number, key: string, node: Node) => void): void {
    for (const e of this.h) f(e.at, e.key, e.node);
  }

  push(at: number, key: string, node: Node): void {
    if (this.h.length >= this.compactAt) this.compact();
    const h = this.h;
    h.push({ at, key, node });
    this.up(h.length - 1);
  }

  /** The earliest live entry, dropping stale ones on the way. */
  top(): TtlEntry | undefined {
    const h = this.h;
    while (h.length > 0 && !this.live(h[0]!)) this.pop();
    return h[0];
  }

  pop(): TtlEntry | undefined {
    const h = this.h;
    const first = h[0];
    const last = h.pop();
    if (h.length > 0 && last !== undefined) {
      h[0] = last;
      this.down(0);
    }
    return first;
  }

  /** Drops stale entries; amortised O(1) per push because the threshold doubles with the live size. */
  private compact(): void {
    this.h = this.h.filter(this.live);
    for (let i = (this.h.length >> 1) - 1; i >= 0; i--) this.down(i);
    this.compactAt = Math.max(1024, this.h.length * 2);
  }

  private up(i: number): void {
    const h = this.h;
    const x = h[i]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const y = h[p]!;
      if (!less(x, y)) break;
      h[i] = y;
      i = p;
    }
    h[i] = x;
  }

  private down(i: number): void {
    const h = this.h;
    const n = h.length;
    const x = h[i]!;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && less(h[c + 1]!, h[c]!)) c++;
      if (!less(h[c]!, x)) break;
      h[i] = h[c]!;
      i = c;
    }
    h[i] = x;
  }
}

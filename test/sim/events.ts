// The simulator's agenda: actions due at a simulated time, run in (time, insertion) order so a
// seed always replays the same interleaving.

interface Item {
  at: number;
  seq: number;
  run: () => void;
}

export class Agenda {
  private heap: Item[] = [];
  private seq = 0;

  get size(): number {
    return this.heap.length;
  }

  at(time: number, run: () => void): void {
    const item = { at: time, seq: this.seq++, run };
    const h = this.heap;
    h.push(item);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  /** Runs everything due at or before `now`, including what those actions schedule for `now`. */
  runDue(now: number): void {
    const h = this.heap;
    while (h.length > 0 && h[0]!.at <= now) this.pop().run();
  }

  private pop(): Item {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l]!, h[m]!)) m = l;
        if (r < h.length && before(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

const before = (a: Item, b: Item) => a.at < b.at || (a.at === b.at && a.seq < b.seq);

// The leader's view of one follower: how far it matches, what to send next, and the flow control
// that bounds how much is in flight (etcd's tracker.Progress and Inflights).

export type ProgressState =
  /** Unknown match: one MsgApp at a time until the follower answers. */
  | "StateProbe"
  /** Known match: optimistic pipelining, bounded by the inflight window. */
  | "StateReplicate"
  /** Needs entries that were compacted: a snapshot is on its way, nothing else is sent. */
  | "StateSnapshot";

/**
 * A ring of the last indexes of MsgApps sent but not acknowledged. When full, the leader stops
 * sending to that follower until acknowledgements (or a heartbeat response) free a slot.
 */
export class Inflights {
  private start = 0;
  private buffer: number[] = [];
  count = 0;

  constructor(readonly size: number) {}

  add(index: number): void {
    if (this.full()) throw new Error("raft: cannot add into a full inflights");
    let next = this.start + this.count;
    if (next >= this.size) next -= this.size;
    this.buffer[next] = index;
    this.count++;
  }

  /** Frees every message whose last index is <= to (acknowledged cumulatively). */
  freeLE(to: number): void {
    if (this.count === 0 || to < this.buffer[this.start]!) return;
    let idx = this.start;
    let i = 0;
    for (; i < this.count; i++) {
      if (to < this.buffer[idx]!) break;
      if (++idx >= this.size) idx -= this.size;
    }
    this.count -= i;
    this.start = this.count === 0 ? 0 : idx;
  }

  freeFirstOne(): void {
    if (this.count > 0) this.freeLE(this.buffer[this.start]!);
  }

  full(): boolean {
    return this.count === this.size;
  }

  reset(): void {
    this.count = 0;
    this.start = 0;
  }
}

export class Progress {
  match = 0;
  state: ProgressState = "StateProbe";
  /** In StateSnapshot: the index of the snapshot sent. */
  pendingSnapshot = 0;
  /** Heard from since the last CheckQuorum round. */
  recentActive = false;
  /** In StateProbe: a MsgApp is outstanding, wait for its answer (or a heartbeat response). */
  probeSent = false;
  readonly inflights: Inflights;

  constructor(
    public next: number,
    maxInflight: number,
  ) {
    this.inflights = new Inflights(maxInflight);
  }

  private resetState(state: ProgressState): void {
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  becomeProbe(): void {
    // After a snapshot, the follower has at least the snapshot: probe right after it.
    if (this.state === "StateSnapshot") {
      const pending = this.pendingSnapshot;
      this.resetState("StateProbe");
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.resetState("StateProbe");
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState("StateReplicate");
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState("StateSnapshot");
    this.pendingSnapshot = snapshotIndex;
  }

  /** An acknowledgement up to n; false if it tells us nothing new (stale or duplicate). */
  maybeUpdate(n: number): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, n + 1);
    return updated;
  }

  /** Pipelining: assume the MsgApp ending at n will be accepted. */
  optimisticUpdate(n: number): void {
    this.next = n + 1;
  }

  /**
   * A rejection of the MsgApp whose previous index was `rejected`; `matchHint` is where the
   * follower's log can possibly match. False if the rejection is stale (an older probe).
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === "StateReplicate") {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), 1);
    this.probeSent = false;
    return true;
  }

  isPaused(): boolean {
    switch (this.state) {
      case "StateProbe":
        return this.probeSent;
      case "StateReplicate":
        return this.inflights.full();
      case "StateSnapshot":
        return true;
    }
  }
}

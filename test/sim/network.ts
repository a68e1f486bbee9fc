// The simulated network: every message gets a random delay (so messages reorder), may be dropped
// or duplicated, and does not cross a blocked link (partitions, including one-way ones).
import type { Message, NodeId } from "../../internal/raft/types.ts";
import type { Agenda } from "./events.ts";
import type { Prng } from "./prng.ts";

export interface NetConfig {
  drop: number;
  duplicate: number;
  maxDelay: number;
  /** Share of messages held back much longer than usual (a slow link, a retransmission). */
  spike: number;
}

export type SendOutcome = "sent" | "dropped" | "blocked";

export class Network {
  private readonly blocked = new Set<string>();

  constructor(
    private readonly rng: Prng,
    public cfg: NetConfig,
    private readonly agenda: Agenda,
    private readonly deliver: (m: Message) => void,
  ) {}

  isBlocked(from: NodeId, to: NodeId): boolean {
    return this.blocked.has(`${from}>${to}`);
  }

  block(from: NodeId, to: NodeId): void {
    this.blocked.add(`${from}>${to}`);
  }

  heal(): void {
    this.blocked.clear();
  }

  get partitioned(): boolean {
    return this.blocked.size > 0;
  }

  send(m: Message, now: number): SendOutcome {
    if (this.isBlocked(m.from, m.to)) return "blocked";
    if (this.rng.chance(this.cfg.drop)) return "dropped";
    const copies = this.rng.chance(this.cfg.duplicate) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      // Each copy is its own object: a node must never see another node's mutations.
      const copy: Message = { ...m, entries: m.entries.map((e) => ({ ...e })) };
      let delay = this.rng.range(1, this.cfg.maxDelay);
      if (this.rng.chance(this.cfg.spike)) delay += this.rng.range(20, 300);
      this.agenda.at(now + delay, () => {
        // A partition that started while the message was in flight stops it too.
        if (!this.isBlocked(copy.from, copy.to)) this.deliver(copy);
      });
    }
    return "sent";
  }
}

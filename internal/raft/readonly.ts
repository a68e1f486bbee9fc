// ReadIndex bookkeeping on the leader (etcd's ReadOnlySafe): a read is answered at the commit index
// the leader had when it arrived, once a quorum has acknowledged a heartbeat carrying its ctx, which
// proves nobody else led at a later term at that moment.
import type { Message, NodeId } from "./types.ts";

export interface ReadIndexStatus {
  /** The leader's commit index when the request arrived. */
  index: number;
  req: Message;
  acks: Set<NodeId>;
}

export class ReadOnly {
  private readonly pending = new Map<string, ReadIndexStatus>();
  /** Request ctxs in arrival order: an ack for one confirms every earlier one too. */
  private queue: string[] = [];

  addRequest(index: number, req: Message): void {
    const ctx = req.context ?? "";
    if (this.pending.has(ctx)) return;
    this.pending.set(ctx, { index, req, acks: new Set() });
    this.queue.push(ctx);
  }

  /** Records that `from` answered a heartbeat carrying ctx; the acks so far, or null if unknown. */
  recvAck(from: NodeId, ctx: string): Set<NodeId> | null {
    const rs = this.pending.get(ctx);
    if (!rs) return null;
    rs.acks.add(from);
    return rs.acks;
  }

  /** Removes and returns the requests up to and including ctx, oldest first. */
  advance(ctx: string): ReadIndexStatus[] {
    const i = this.queue.indexOf(ctx);
    if (i < 0) return [];
    const done = this.queue.splice(0, i + 1);
    const out: ReadIndexStatus[] = [];
    for (const c of done) {
      const rs = this.pending.get(c);
      if (rs) out.push(rs);
      this.pending.delete(c);
    }
    return out;
  }

  lastPendingRequestCtx(): string | undefined {
    return this.queue[this.queue.length - 1];
  }
}

// The cluster's membership as a replicated state: configuration-change entries in the log change
// it, snapshots carry it, and etcd's strict reconfiguration checks read it.
import type { Member } from "./membership.ts";

export type ConfChange =
  | { type: "add"; member: Member }
  | { type: "remove"; id: string }
  | { type: "update"; id: string; peerURLs: string[] }
  /** A member publishes its name and client URLs once it runs (etcd's attributes write). */
  | { type: "attributes"; id: string; name: string; clientURLs: string[] };

export interface ClusterState {
  members: Member[];
  removed: string[];
}

export class Cluster {
  private readonly members = new Map<string, Member>();
  private readonly removed = new Set<string>();

  static from(state: ClusterState): Cluster {
    const c = new Cluster();
    for (const m of state.members) c.members.set(m.id, { ...m });
    for (const id of state.removed) c.removed.add(id);
    return c;
  }

  toJSON(): ClusterState {
    return { members: this.list(), removed: [...this.removed] };
  }

  /** Sorted by ID, as etcd lists members. */
  list(): Member[] {
    return [...this.members.values()].sort((a, b) => (BigInt(`0x${a.id}`) < BigInt(`0x${b.id}`) ? -1 : 1));
  }

  get(id: string): Member | undefined {
    return this.members.get(id);
  }

  isRemoved(id: string): boolean {
    return this.removed.has(id);
  }

  get size(): number {
    return this.members.size;
  }

  hasPeerURL(url: string): boolean {
    for (const m of this.members.values()) if (m.peerURLs.includes(url)) return true;
    return false;
  }

  apply(cc: ConfChange): void {
    switch (cc.type) {
      case "add":
        this.members.set(cc.member.id, { ...cc.member });
        return;
      case "remove":
        this.members.delete(cc.id);
        this.removed.add(cc.id);
        return;
      case "update": {
        const m = this.members.get(cc.id);
        if (m) m.peerURLs = cc.peerURLs;
        return;
      }
      case "attributes": {
        const m = this.members.get(cc.id);
        if (m) {
          m.name = cc.name;
          m.clientURLs = cc.clientURLs;
        }
        return;
      }
    }
  }

  /** etcd's strict-reconfig-check for an add: enough started members for the new quorum. */
  isReadyToAdd(started: (id: string) => boolean): boolean {
    let nmembers = 1;
    let nstarted = 0;
    for (const m of this.members.values()) {
      nmembers++;
      if (started(m.id)) nstarted++;
    }
    // Growing a one-member cluster is allowed so its data can be restored onto a second one.
    if (nstarted === 1 && nmembers === 2) return true;
    return nstarted >= Math.floor(nmembers / 2) + 1;
  }

  /** etcd's strict-reconfig-check for a remove: the rest still make a quorum. */
  isReadyToRemove(id: string, started: (id: string) => boolean): boolean {
    let nmembers = 0;
    let nstarted = 0;
    for (const m of this.members.values()) {
      if (m.id === id) continue;
      nmembers++;
      if (started(m.id)) nstarted++;
    }
    return nstarted >= Math.floor(nmembers / 2) + 1;
  }
}

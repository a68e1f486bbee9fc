// Member and cluster identity derived exactly as etcd derives them, so the same flags give the
// same IDs as the real etcd (and `etcdctl member list` output lines up).
import { createHash } from "node:crypto";

export interface Member {
  /** Lowercase hex without padding, as etcd prints IDs. */
  id: string;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
}

function first8(hash: Buffer): bigint {
  return hash.readBigUInt64BE(0);
}

/** sha1(sorted peer URLs joined + cluster token)[:8], big-endian. */
export function memberId(peerURLs: readonly string[], clusterToken: string): string {
  const b = [...peerURLs].sort().join("") + clusterToken;
  return first8(createHash("sha1").update(b).digest()).toString(16);
}

/** sha1(the sorted member IDs as 8-byte big-endian words)[:8]. */
export function clusterId(memberIds: readonly string[]): string {
  const ids = memberIds.map((h) => BigInt(`0x${h}`)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const buf = Buffer.alloc(8 * ids.length);
  ids.forEach((id, i) => buf.writeBigUInt64BE(id, 8 * i));
  return first8(createHash("sha1").update(buf).digest()).toString(16);
}

/** Parses `--initial-cluster` (`a=http://x:2380,a=http://y:2380,b=...`) into name -> peer URLs. */
export function parseInitialCluster(s: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const part of s.split(",")) {
    if (part.trim() === "") continue;
    const eq = part.indexOf("=");
    if (eq <= 0) throw new Error(`invalid --initial-cluster entry "${part}" (want name=url)`);
    const name = part.slice(0, eq);
    const url = part.slice(eq + 1);
    const list = out.get(name) ?? [];
    list.push(url);
    out.set(name, list);
  }
  return out;
}

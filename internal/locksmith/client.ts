// The etcd connection both locksmithctl and locksmithd build from their global flags.
import { readFileSync } from "node:fs";
import { Client } from "../kvclient/index.ts";
import { EtcdLock } from "./etcdlock.ts";

export const DEFAULT_ENDPOINTS = "http://127.0.0.1:2379,http://127.0.0.1:4001";

export interface ConnectOptions {
  endpoint: string;
  cafile: string;
  certfile: string;
  keyfile: string;
  username: string;
  password: string;
  group: string;
  /** Seconds; 0 = off. */
  lockTtl?: number;
}

/**
 * Builds the client (files read now, so a bad path fails here) and creates the semaphore if absent.
 * Unlike the original, a CA alone is enough (flatcar/Flatcar#948): each file is used if given.
 */
export async function openLock(o: ConnectOptions): Promise<EtcdLock> {
  const endpoints = o.endpoint.split(",").map((e) => e.trim()).filter((e) => e !== "");
  const read = (f: string) => (f ? readFileSync(f, "utf8") : undefined);
  const tls = o.cafile || o.certfile || o.keyfile ? { ca: read(o.cafile), cert: read(o.certfile), key: read(o.keyfile) } : undefined;
  const client = new Client({
    endpoints,
    headerTimeout: 5000,
    // Machines spread over the members, as the Go client's random endpoint choice does.
    shuffle: true,
    requestTimeout: 15000,
    tls,
    ...(o.username ? { username: o.username, password: o.password } : {}),
  });
  const lock = new EtcdLock(client, { group: o.group, lockTtl: o.lockTtl ?? 0 });
  await lock.init();
  return lock;
}

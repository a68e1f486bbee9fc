// The peer probe: besides telling who is up, it is how a member removed before it applied its own
// addition (so it never sends raft messages that could be refused) learns it must stop.
import { afterEach, expect, test } from "bun:test";
import { Transport, type TransportOptions } from "../../internal/rafthttp/transport.ts";

const open: { stop(): void }[] = [];
afterEach(() => {
  for (const o of open.splice(0)) o.stop();
});

function member(selfId: string, removed: Set<string>, onRemoved: () => void): { t: Transport; url: string } {
  const opts: TransportOptions = {
    selfId,
    clusterId: "c1",
    onMessage: () => {},
    onUnreachable: () => {},
    onSnapshotStatus: () => {},
    isRemoved: (id) => removed.has(id),
    onRemoved,
  };
  const t = new Transport(opts);
  const app = t.routes();
  const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req) => app.fetch(req) });
  open.push(t, { stop: () => server.stop(true) });
  return { t, url: `http://127.0.0.1:${server.port}` };
}

async function waitFor(what: () => boolean, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await Bun.sleep(20)) if (what()) return true;
  return what();
}

test("a member whose ID a peer holds as removed learns it from the probe alone", async () => {
  let told = 0;
  const a = member("a", new Set(), () => told++);
  const b = member("b", new Set(["a"]), () => {});
  a.t.setPeers([{ id: "b", peerURLs: [b.url] }]);
  expect(await waitFor(() => told > 0, 5000)).toBe(true);
});

test("a member still in the cluster is not told it was removed; its probed peer counts as active", async () => {
  let told = 0;
  const a = member("a", new Set(), () => told++);
  const b = member("b", new Set(["x"]), () => {});
  a.t.setPeers([{ id: "b", peerURLs: [b.url] }]);
  const seen = await fetch(`${b.url}/raft/probe`, { headers: { "X-Server-From": "x", "X-Etcd-Cluster-ID": "c1" } });
  expect(seen.status).toBe(410);
  expect(await waitFor(() => a.t.activeSince("b") !== null, 5000)).toBe(true);
  expect(told).toBe(0);
});

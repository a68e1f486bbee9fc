// /v2/members: list, add, remove, update, leader (etcd-v2.md §1.10), with etcd's status codes.
import { Hono } from "hono";
import * as v from "valibot";
import type { EtcdServer } from "./server.ts";
import { CORS, messageResponse } from "./respond.ts";
import { memberId } from "./membership.ts";
import { logger } from "../log/log.ts";

const log = logger("v2http");
/** How long peers must have been connected before a reconfiguration is allowed (etcd's HealthInterval). */
const HEALTH_INTERVAL_MS = 5000;

const PeerURLs = v.object({
  peerURLs: v.pipe(
    v.array(v.pipe(v.string(), v.url(), v.check((u) => /^https?:\/\//.test(u), "URL scheme must be http or https"))),
    v.minLength(1),
  ),
});

/** Hex member IDs as etcd parses them (strconv.ParseUint(s, 16, 64)), printed back unpadded. */
function parseId(s: string): string | null {
  if (!/^[0-9a-fA-F]{1,16}$/.test(s)) return null;
  return BigInt(`0x${s}`).toString(16);
}

export function membersApp(server: EtcdServer): Hono {
  const app = new Hono();
  const headers = () => ({ ...CORS, "X-Etcd-Cluster-Id": server.clusterId, "Content-Type": "application/json" });
  const send = (status: number, body: unknown) => new Response(`${JSON.stringify(body)}\n`, { status, headers: headers() });
  const fail = (status: number, message: string) => messageResponse(status, message, { "X-Etcd-Cluster-Id": server.clusterId });
  const internal = () => fail(500, "Internal Server Error");

  async function peerURLs(req: Request): Promise<string[] | Response> {
    const ct = req.headers.get("content-type") ?? "";
    if (ct.split(";")[0]!.trim() !== "application/json")
      return fail(415, `Bad Content-Type ${ct}, accept application/json`);
    let body: unknown;
    try {
      body = JSON.parse(await req.text());
    } catch (e) {
      return fail(400, (e as Error).message);
    }
    const r = v.safeParse(PeerURLs, body);
    if (!r.success) return fail(400, r.issues[0].message);
    return r.output.peerURLs;
  }

  app.get("/", () => send(200, { members: server.members() }));
  app.get("/leader", () => {
    const leader = server.members().find((m) => m.id === server.leaderId);
    return leader ? send(200, leader) : fail(503, "During election");
  });

  app.post("/", async (c) => {
    const urls = await peerURLs(c.req.raw);
    if (urls instanceof Response) return urls;
    if (urls.some((u) => server.cluster.hasPeerURL(u))) return internal();
    if (!server.cluster.isReadyToAdd(server.isStarted)) {
      log.warn("not enough started members, rejecting member add");
      return internal();
    }
    // etcd's strict reconfiguration check: every voter connected for the last 5 s.
    const cutoff = Date.now() - HEALTH_INTERVAL_MS;
    if (!server.members().every((m) => server.connectedSince(m.id, cutoff))) {
      log.warn("not healthy for reconfigure, rejecting member add");
      return internal();
    }
    const member = {
      id: memberId(urls, `${server.cfg.clusterToken}${Math.floor(Date.now() / 1000)}`),
      name: "",
      peerURLs: urls,
      clientURLs: [],
    };
    try {
      await server.changeMembership({ type: "add", member });
    } catch (e) {
      log.error(`error adding member ${member.id}: ${(e as Error).message}`);
      return internal();
    }
    return send(201, member);
  });

  app.delete("/:id", async (c) => {
    const raw = c.req.param("id");
    const id = parseId(raw);
    if (id !== null && server.cluster.isRemoved(id)) return fail(410, `Member permanently removed: ${raw}`);
    if (id === null || !server.cluster.get(id)) return fail(404, `No such member: ${raw}`);
    if (!server.cluster.isReadyToRemove(id, server.isStarted)) {
      log.warn(`not enough started members, rejecting remove member ${id}`);
      return internal();
    }
    // A member that is down can go; otherwise the rest must still make a quorum of live members.
    const cutoff = Date.now() - HEALTH_INTERVAL_MS;
    const voters = server.members();
    if (id === server.id || server.connectedSince(id, Date.now())) {
      const active = voters.filter((m) => server.connectedSince(m.id, cutoff)).length;
      if (active - 1 < 1 + Math.floor((voters.length - 1) / 2)) {
        log.warn(`not healthy for reconfigure, rejecting remove member ${id}`);
        return internal();
      }
    }
    try {
      await server.changeMembership({ type: "remove", id });
    } catch (e) {
      log.error(`error removing member ${id}: ${(e as Error).message}`);
      return internal();
    }
    return new Response(null, { status: 204, headers: { ...CORS, "X-Etcd-Cluster-Id": server.clusterId } });
  });

  app.put("/:id", async (c) => {
    const raw = c.req.param("id");
    const id = parseId(raw);
    const urls = await peerURLs(c.req.raw);
    if (urls instanceof Response) return urls;
    if (id !== null && server.cluster.isRemoved(id)) return fail(410, `Member permanently removed: ${raw}`);
    if (id === null || !server.cluster.get(id)) return fail(404, `No such member: ${raw}`);
    try {
      await server.changeMembership({ type: "update", id, peerURLs: urls });
    } catch (e) {
      log.error(`error updating member ${id}: ${(e as Error).message}`);
      return internal();
    }
    return new Response(null, { status: 204, headers: { ...CORS, "X-Etcd-Cluster-Id": server.clusterId } });
  });
  return app;
}

// The v2 members API (/v2/members). Status handling follows etcd's Go client: anything but the
// expected statuses is "unexpected status code N"; the server's {"message"} is kept where the
// Go client keeps it (409 on add/update, 404 on update).
import { InvalidResponseError, MembersError } from "./errors.ts";
import { MemberListSchema, MemberSchema, MessageSchema, parseJSON, toMember, type Member } from "./schema.ts";
import type { HTTPResult, Transport } from "./transport.ts";
import { joinURL } from "./url.ts";

export const MEMBERS_PREFIX = "/v2/members";

export interface Signal {
  signal?: AbortSignal;
}

export async function listMembers(t: Transport, o: Signal = {}): Promise<Member[]> {
  const r = await t.do({ method: "GET", url: (ep) => joinURL(ep, MEMBERS_PREFIX) }, o);
  expectStatus(r, 200);
  const list = parseJSON(MemberListSchema, r.body);
  if (list === null) throw new InvalidResponseError(r.endpoint, "not a member list");
  return (list.members ?? []).map(toMember);
}

export async function leader(t: Transport, o: Signal = {}): Promise<Member> {
  const r = await t.do({ method: "GET", url: (ep) => joinURL(ep, MEMBERS_PREFIX, "leader") }, o);
  expectStatus(r, 200);
  return decodeMember(r);
}

/** Adds a member by its peer URLs; it joins as "unstarted" (no name) until it starts. */
export async function addMember(t: Transport, peerURLs: string[], o: Signal = {}): Promise<Member> {
  const body = JSON.stringify({ peerURLs: validatePeerURLs(peerURLs) });
  const r = await t.do({ method: "POST", url: (ep) => joinURL(ep, MEMBERS_PREFIX), body, contentType: "application/json" }, o);
  expectStatus(r, 201, 409);
  if (r.status !== 201) throw serverMessage(r);
  return decodeMember(r);
}

export async function updateMember(t: Transport, id: string, peerURLs: string[], o: Signal = {}): Promise<void> {
  const body = JSON.stringify({ peerURLs: validatePeerURLs(peerURLs) });
  const r = await t.do({ method: "PUT", url: (ep) => joinURL(ep, MEMBERS_PREFIX, id), body, contentType: "application/json" }, o);
  expectStatus(r, 204, 404, 409);
  if (r.status !== 204) throw serverMessage(r);
}

/** 410 (already removed) counts as done, as in the Go client. */
export async function removeMember(t: Transport, id: string, o: Signal = {}): Promise<void> {
  const r = await t.do({ method: "DELETE", url: (ep) => joinURL(ep, MEMBERS_PREFIX, id) }, o);
  expectStatus(r, 204, 410);
}

/**
 * etcd's types.NewURLs: http(s)/unix(s) with host:port and no path, returned sorted.
 * Throws with the same words, before anything is sent.
 */
export function validatePeerURLs(urls: string[]): string[] {
  if (urls.length === 0) throw new Error("no valid URLs given");
  const out = urls.map((raw) => {
    const s = raw.trim();
    const m = /^([a-zA-Z][a-zA-Z0-9+\-.]*):\/\/([^/?#]*)([^?#]*)/.exec(s);
    const scheme = m?.[1]?.toLowerCase() ?? "";
    if (!["http", "https", "unix", "unixs"].includes(scheme)) {
      throw new Error(`URL scheme must be http, https, unix, or unixs: ${s}`);
    }
    if (!/^(\[[^\]]*\]|[^:\[\]]*):[^:]*$/.test(m![2]!)) {
      throw new Error(`URL address does not have the form "host:port": ${s}`);
    }
    if (m![3] !== "") throw new Error(`URL must not contain a path: ${s}`);
    return s;
  });
  return out.sort();
}

function decodeMember(r: HTTPResult): Member {
  const m = parseJSON(MemberSchema, r.body);
  if (m === null) throw new InvalidResponseError(r.endpoint, "not a member");
  return toMember(m);
}

function expectStatus(r: HTTPResult, ...want: number[]): void {
  if (!want.includes(r.status)) throw new MembersError(`unexpected status code ${r.status}`, r.status);
}

function serverMessage(r: HTTPResult): Error {
  const m = parseJSON(MessageSchema, r.body);
  if (m === null) return new InvalidResponseError(r.endpoint, `HTTP ${r.status} without a message`);
  return new MembersError(m.message, r.status);
}

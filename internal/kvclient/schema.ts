// The boundary: every JSON body the client receives is checked here before anything uses it.
// A server is not trusted to send the shapes etcd sends; anything else is an InvalidResponseError.
import * as v from "valibot";
import type { Action, EventJSON, NodeJSON } from "../kv/types.ts";

const index = v.pipe(v.number(), v.integer(), v.minValue(0));

const ACTIONS = [
  "get",
  "set",
  "create",
  "update",
  "compareAndSwap",
  "delete",
  "compareAndDelete",
  "expire",
] as const satisfies readonly Action[];

// Recursive, so the output type is spelled out; field order follows NodeJSON (etcd's order).
export const NodeSchema: v.GenericSchema<unknown, NodeJSON> = v.lazy(() =>
  v.pipe(
    v.object({
      key: v.optional(v.string()),
      value: v.optional(v.string()),
      dir: v.optional(v.boolean()),
      expiration: v.optional(v.nullable(v.string())),
      ttl: v.optional(v.pipe(v.number(), v.integer())),
      nodes: v.optional(v.nullable(v.array(NodeSchema))),
      modifiedIndex: v.optional(index),
      createdIndex: v.optional(index),
    }),
    v.transform((n): NodeJSON => {
      const out: NodeJSON = {};
      if (n.key !== undefined) out.key = n.key;
      if (n.value !== undefined) out.value = n.value;
      if (n.dir === true) out.dir = true;
      if (n.expiration != null) out.expiration = n.expiration;
      if (n.ttl !== undefined) out.ttl = n.ttl;
      if (n.nodes != null) out.nodes = n.nodes;
      if (n.modifiedIndex !== undefined) out.modifiedIndex = n.modifiedIndex;
      if (n.createdIndex !== undefined) out.createdIndex = n.createdIndex;
      return out;
    }),
  ),
);

export const EventSchema: v.GenericSchema<unknown, EventJSON> = v.pipe(
  v.object({
    action: v.picklist(ACTIONS),
    node: NodeSchema,
    prevNode: v.optional(v.nullable(NodeSchema)),
  }),
  v.transform((e): EventJSON => (e.prevNode ? { action: e.action, node: e.node, prevNode: e.prevNode } : { action: e.action, node: e.node })),
);

export const ErrorBodySchema = v.object({
  errorCode: v.pipe(v.number(), v.integer()),
  message: v.optional(v.string(), ""),
  cause: v.optional(v.string(), ""),
  index: v.optional(index, 0),
});

export const MemberSchema = v.object({
  id: v.pipe(v.string(), v.regex(/^[0-9a-f]+$/i)),
  name: v.optional(v.string(), ""),
  peerURLs: v.optional(v.nullable(v.array(v.string())), []),
  clientURLs: v.optional(v.nullable(v.array(v.string())), []),
});

export const MemberListSchema = v.object({
  members: v.optional(v.nullable(v.array(MemberSchema)), []),
});

/** Non-key handlers (members, health) answer errors as {"message": ...}. */
export const MessageSchema = v.object({ message: v.string() });

/** etcd 2.x/3.x send "true"; some proxies a boolean. */
export const HealthSchema = v.object({ health: v.union([v.string(), v.boolean()]) });

export const VersionSchema = v.object({
  etcdserver: v.optional(v.string(), ""),
  etcdcluster: v.optional(v.string(), ""),
});

export interface Member {
  id: string;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
}

/** Parses `text` as JSON and validates it; null when either step fails. */
export function parseJSON<T>(schema: v.GenericSchema<unknown, T>, text: string): T | null {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return null;
  }
  const r = v.safeParse(schema, raw);
  return r.success ? r.output : null;
}

export function toMember(m: v.InferOutput<typeof MemberSchema>): Member {
  return { id: m.id, name: m.name, peerURLs: m.peerURLs ?? [], clientURLs: m.clientURLs ?? [] };
}

// The consensus core's public surface; see rawnode.ts for the loop an application runs.
export { RawNode, type Ready } from "./rawnode.ts";
export type { Config, ProgressStatus, Status } from "./raft.ts";
export { MemoryStorage, type InitialState, type Storage } from "./storage.ts";
export { decodeConfChange, encodeConfChange } from "./confchange.ts";
export * from "./types.ts";

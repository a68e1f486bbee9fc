// The update server's model (Nebraska §5.1) as the API and dashboard see it.
import type { Policy } from "./policy.ts";

/** Instance status ints as Nebraska stores them. */
export const Status = {
  Undefined: 1,
  UpdateGranted: 2,
  Error: 3,
  Complete: 4,
  Installed: 5,
  Downloaded: 6,
  Downloading: 7,
  OnHold: 8,
} as const;
export type StatusCode = (typeof Status)[keyof typeof Status];
export const STATUS_NAME: Record<number, string> = Object.fromEntries(Object.entries(Status).map(([k, v]) => [v, k]));

export const ActivityClass = {
  PackageNotFound: 1,
  RolloutStarted: 2,
  RolloutFinished: 3,
  RolloutFailed: 4,
  InstanceUpdateFailed: 5,
  ChannelPackageUpdated: 6,
} as const;
export const ACTIVITY_CLASS_NAME: Record<number, string> = Object.fromEntries(Object.entries(ActivityClass).map(([k, v]) => [v, k]));
export const Severity = { Success: 1, Info: 2, Warning: 3, Error: 4 } as const;
export const SEVERITY_NAME: Record<number, string> = Object.fromEntries(Object.entries(Severity).map(([k, v]) => [v, k.toLowerCase()]));

export const ARCHES = ["all", "amd64", "aarch64", "x86"] as const;
export type Arch = (typeof ARCHES)[number];

export interface App {
  id: string;
  name: string;
  description: string;
  createdAt: number;
}

export interface ExtraFile {
  name: string;
  size: number;
  /** base64 SHA-1, as package@hash. */
  hash: string;
  /** lowercase hex SHA-256, as package@hash_sha256 (§1.5: flatcar-postinst checks it). */
  hashSha256: string;
}

export interface Package {
  id: string;
  appId: string;
  version: string;
  arch: Arch;
  filename: string;
  /** Codebase the client downloads from; empty when this server hosts the file. */
  url: string;
  size: number;
  /** base64 SHA-1 (package@hash). */
  hashSha1: string;
  /** base64 SHA-256 (action@sha256). */
  hashSha256: string;
  hosted: boolean;
  extraFiles: ExtraFile[];
  createdAt: number;
}

export interface Channel {
  id: string;
  appId: string;
  name: string;
  arch: Arch;
  color: string;
  packageId: string | null;
  createdAt: number;
}

export interface Group {
  id: string;
  appId: string;
  name: string;
  description: string;
  track: string;
  channelId: string | null;
  policy: Policy;
  rolloutInProgress: boolean;
  createdAt: number;
}

export interface InstanceApp {
  instanceId: string;
  appId: string;
  groupId: string;
  ip: string;
  alias: string;
  oem: string;
  oemVersion: string;
  alephVersion: string;
  version: string;
  status: number;
  statusName: string;
  lastCheck: number;
  lastUpdateGrantedAt: number | null;
  lastUpdateVersion: string | null;
  updateInProgress: boolean;
  createdAt: number;
}

export interface StatusHistoryEntry {
  status: number;
  statusName: string;
  version: string;
  errorCode: number | null;
  createdAt: number;
}

export interface EventRow {
  id: number;
  instanceId: string;
  appId: string;
  groupId: string;
  type: number;
  result: number;
  errorCode: number | null;
  previousVersion: string | null;
  version: string;
  createdAt: number;
}

export interface Activity {
  id: number;
  appId: string;
  groupId: string | null;
  channelId: string | null;
  instanceId: string | null;
  version: string;
  class: number;
  className: string;
  severity: number;
  severityName: string;
  message: string;
  createdAt: number;
}

export interface Page<T> {
  items: T[];
  total: number;
  page: number;
  perPage: number;
}

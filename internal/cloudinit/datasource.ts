// Where user-data and metadata come from (§6.2), and picking the first source that is available:
// every candidate polled in parallel with backoff (100 ms doubling to 30 s) while its availability
// can still change, within one overall budget (5 minutes unless told otherwise). The sources that
// read files are here; metadata services (metadata.ts), VMware (vmware.ts) and CloudSigma
// (cloudsigma.ts) beside it.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { XMLParser } from "fast-xml-parser";
import * as v from "valibot";
import { logger } from "../log/log.ts";
import { emptyMetadata, type Metadata } from "./environment.ts";
import { get, getRetry, type HttpOptions } from "./http.ts";

const log = logger("cloudinit");

export interface Datasource {
  readonly type: string;
  /** false: once unavailable, always unavailable (no point in polling again). */
  readonly availabilityChanges: boolean;
  isAvailable(): Promise<boolean>;
  fetchMetadata(): Promise<Metadata>;
  fetchUserdata(): Promise<Uint8Array>;
}

export function readIfExists(path: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return new Uint8Array();
    throw e;
  }
}

export const text = (b: Uint8Array) => new TextDecoder().decode(b);

/** net.ParseIP: the address if it is one, else "". */
export function ip(s: string): string {
  const t = s.trim();
  return /^[0-9]{1,3}(\.[0-9]{1,3}){3}$/.test(t) || (t.includes(":") && /^[0-9a-fA-F:.]+$/.test(t)) ? t : "";
}

export function fileSource(path: string): Datasource {
  return {
    type: "local-file",
    availabilityChanges: true,
    isAvailable: async () => existsSync(path),
    fetchMetadata: async () => emptyMetadata(),
    fetchUserdata: async () => readFileSync(path),
  };
}

export function urlSource(url: string, http: HttpOptions = {}): Datasource {
  return {
    type: "url",
    availabilityChanges: true,
    isAvailable: async () => get(url, http).then(() => true, () => false),
    fetchMetadata: async () => emptyMetadata(),
    fetchUserdata: () => getRetry(url, http),
  };
}

/** `cloud-config-url=` (or `cloud_config_url=`) on the kernel command line; the last one wins. */
export function findCloudConfigURL(cmdline: string): string | undefined {
  let url: string | undefined;
  for (const token of cmdline.trim().split(" ")) {
    const eq = token.indexOf("=");
    const key = (eq === -1 ? token : token.slice(0, eq)).replaceAll("_", "-");
    if (key !== "cloud-config-url") continue;
    if (eq === -1) {
      log.warn("Found cloud-config-url in /proc/cmdline with no value, ignoring.");
      continue;
    }
    url = token.slice(eq + 1);
  }
  return url;
}

export function procCmdlineSource(location = "/proc/cmdline", http: HttpOptions = {}): Datasource {
  const url = () => {
    try {
      return findCloudConfigURL(readFileSync(location, "utf8"));
    } catch {
      return undefined;
    }
  };
  return {
    type: "proc-cmdline",
    availabilityChanges: false,
    isAvailable: async () => url() !== undefined,
    fetchMetadata: async () => emptyMetadata(),
    fetchUserdata: async () => {
      const u = url();
      if (u === undefined) throw new Error(`cloud-config-url not found in ${location}`);
      return getRetry(u, http);
    },
  };
}

const ConfigDriveMeta = v.object({
  public_keys: v.optional(v.record(v.string(), v.string()), {}),
  hostname: v.optional(v.string(), ""),
  network_config: v.optional(v.object({ content_path: v.optional(v.string(), "") }), {}),
});

export function configDriveSource(root: string): Datasource {
  const version = join(root, "openstack", "latest");
  return {
    type: "cloud-drive",
    availabilityChanges: true,
    isAvailable: async () => existsSync(root),
    fetchMetadata: async () => {
      const raw = readIfExists(join(version, "meta_data.json"));
      const md = emptyMetadata();
      if (raw.length === 0) return md;
      const m = v.parse(ConfigDriveMeta, JSON.parse(text(raw)));
      const path = m.network_config.content_path;
      const network = path === "" ? undefined : { format: "debian" as const, text: text(readIfExists(join(root, "openstack", path))) };
      return { ...md, hostname: m.hostname, sshPublicKeys: m.public_keys, ...(network ? { network } : {}) };
    },
    fetchUserdata: async () => readIfExists(join(version, "user_data")),
  };
}

/** Azure's agent directory: CustomData and SharedConfig.xml. */
export function waagentSource(root: string): Datasource {
  return {
    type: "waagent",
    availabilityChanges: true,
    // The agent marks a provisioned machine; before that its files are not complete.
    isAvailable: async () => existsSync(join(root, "provisioned")),
    fetchUserdata: async () => readIfExists(join(root, "CustomData")),
    fetchMetadata: async () => {
      const md = emptyMetadata();
      const xml = text(readIfExists(join(root, "SharedConfig.xml")));
      if (xml === "") return md;
      const doc = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: "" }).parse(xml) as {
        SharedConfig?: { Instances?: { Instance?: InstanceXml | InstanceXml[] } };
      };
      const instances = doc.SharedConfig?.Instances?.Instance;
      const inst = Array.isArray(instances) ? instances[0] : instances;
      md.privateIPv4 = ip(inst?.address ?? "");
      const eps = inst?.InputEndpoints?.Endpoint;
      for (const ep of Array.isArray(eps) ? eps : eps ? [eps] : []) {
        const host = (ep.loadBalancedPublicAddress ?? "").split(":")[0] ?? "";
        if (ip(host) !== "") {
          md.publicIPv4 = host;
          break;
        }
      }
      return md;
    },
  };
}

interface InstanceXml {
  address?: string;
  InputEndpoints?: { Endpoint?: { loadBalancedPublicAddress?: string } | { loadBalancedPublicAddress?: string }[] };
}

/**
 * The first source to be available within the budget, or null. Polling stops for a source whose
 * availability cannot change, and for all of them once one is found or the budget is spent.
 */
export async function selectDatasource(sources: Datasource[], budgetMs: number, opts: { initialMs?: number; maxMs?: number } = {}): Promise<Datasource | null> {
  const done = new AbortController();
  const timer = setTimeout(() => done.abort(), budgetMs);
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(t);
        done.signal.removeEventListener("abort", wake);
        resolve();
      };
      const t = setTimeout(wake, ms);
      done.signal.addEventListener("abort", wake, { once: true });
    });
  const poll = async (s: Datasource): Promise<Datasource | null> => {
    let wait = opts.initialMs ?? 100;
    while (!done.signal.aborted) {
      log.info(`Checking availability of "${s.type}"`);
      if (await s.isAvailable().catch(() => false)) return s;
      if (!s.availabilityChanges) return null;
      await sleep(wait);
      wait = Math.min(wait * 2, opts.maxMs ?? 30_000);
    }
    return null;
  };
  try {
    return await new Promise<Datasource | null>((resolve) => {
      let pending = sources.length;
      if (pending === 0) resolve(null);
      done.signal.addEventListener("abort", () => resolve(null), { once: true });
      for (const s of sources) {
        void poll(s).then((r) => {
          if (r && !done.signal.aborted) resolve(r);
          else if (--pending === 0) resolve(null);
        });
      }
    });
  } finally {
    clearTimeout(timer);
    done.abort();
  }
}

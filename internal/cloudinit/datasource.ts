// Where user-data and metadata come from (§6.2), and picking the first source that is available:
// every candidate polled in parallel with backoff (100 ms doubling to 30 s) while its availability
// can still change, within one overall budget (5 minutes unless told otherwise).
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, writeSync } from "node:fs";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import { XMLParser } from "fast-xml-parser";
import * as v from "valibot";
import { logger } from "../log/log.ts";
import { decodeContent } from "./encoding.ts";
import { emptyMetadata, type Metadata } from "./environment.ts";
import { fetchData, get, getRetry, NotFound, put, type HttpOptions } from "./http.ts";

const log = logger("cloudinit");

export interface Datasource {
  readonly type: string;
  /** false: once unavailable, always unavailable (no point in polling again). */
  readonly availabilityChanges: boolean;
  isAvailable(): Promise<boolean>;
  fetchMetadata(): Promise<Metadata>;
  fetchUserdata(): Promise<Uint8Array>;
}

function readIfExists(path: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return new Uint8Array();
    throw e;
  }
}

const text = (b: Uint8Array) => new TextDecoder().decode(b);
const withSlash = (u: string) => (u.endsWith("/") ? u : `${u}/`);

/** net.ParseIP: the address if it is one, else "". */
function ip(s: string): string {
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

/** A metadata service: available when GET root+apiVersion answers 2xx. */
function service(root: string, apiVersion: string, userdataPath: string, http: HttpOptions) {
  const base = withSlash(root);
  return {
    base,
    isAvailable: () => get(base + apiVersion, http).then(() => true, () => false),
    fetchUserdata: () => fetchData(base + userdataPath, http),
  };
}

export function ec2Source(root: string, http: HttpOptions = {}): Datasource {
  const headers: Record<string, string> = { ...http.headers };
  const h: HttpOptions = { ...http, headers };
  const s = service(root, "2009-04-04/", "2009-04-04/user-data", h);
  const meta = `${s.base}2009-04-04/meta-data`;
  // IMDSv2: a session token when the service hands one out, else plain IMDSv1 requests.
  let tokenTried = false;
  const token = async () => {
    if (tokenTried) return;
    tokenTried = true;
    try {
      const t = await put(`${s.base}latest/api/token`, { timeoutMs: 2000, headers: { "X-aws-ec2-metadata-token-ttl-seconds": "21600" } });
      headers["X-aws-ec2-metadata-token"] = text(t).trim();
    } catch {
      // no IMDSv2 here
    }
  };
  const attr = async (path: string): Promise<string | undefined> => {
    try {
      const lines = text(await getRetry(`${meta}/${path}`, h)).split("\n");
      return lines[0];
    } catch (e) {
      if (e instanceof NotFound) return undefined;
      throw e;
    }
  };
  return {
    type: "ec2-metadata-service",
    availabilityChanges: true,
    isAvailable: async () => {
      await token();
      return s.isAvailable();
    },
    fetchUserdata: async () => {
      await token();
      return s.fetchUserdata();
    },
    fetchMetadata: async () => {
      await token();
      const md = emptyMetadata();
      const names = text(await fetchData(`${meta}/public-keys`, h)).split("\n").filter((l) => l !== "");
      for (const line of names) {
        const eq = line.indexOf("=");
        if (eq === -1) throw new Error(`malformed public key: "${line}"`);
        const key = await attr(`public-keys/${line.slice(0, eq)}/openssh-key`);
        if (key !== undefined) md.sshPublicKeys[line.slice(eq + 1)] = key;
      }
      md.hostname = (await attr("hostname"))?.split(" ")[0] ?? "";
      md.privateIPv4 = ip((await attr("local-ipv4")) ?? "");
      md.publicIPv4 = ip((await attr("public-ipv4")) ?? "");
      return md;
    },
  };
}

export function gceSource(root: string, http: HttpOptions = {}): Datasource {
  const h: HttpOptions = { ...http, headers: { ...http.headers, "Metadata-Flavor": "Google" } };
  const s = service(root, "computeMetadata/v1/", "computeMetadata/v1/instance/attributes/user-data", h);
  const str = async (key: string) => text(await fetchData(`${s.base}computeMetadata/v1/instance/${key}`, h)).trim();
  const addr = async (key: string) => {
    const x = await str(key);
    if (x !== "" && ip(x) === "") throw new Error(`couldn't parse "${x}" as IP address`);
    return x;
  };
  return {
    type: "gce-metadata-service",
    availabilityChanges: true,
    isAvailable: s.isAvailable,
    fetchUserdata: s.fetchUserdata,
    fetchMetadata: async () => ({
      ...emptyMetadata(),
      publicIPv4: await addr("network-interfaces/0/access-configs/0/external-ip"),
      privateIPv4: await addr("network-interfaces/0/ip"),
      hostname: await str("hostname"),
    }),
  };
}

const DOAddress = v.nullish(v.object({ ip_address: v.optional(v.string(), "") }));
const DOInterface = v.object({ ipv4: DOAddress, ipv6: DOAddress });
const DOMeta = v.object({
  hostname: v.optional(v.string(), ""),
  public_keys: v.optional(v.array(v.string()), []),
  interfaces: v.optional(v.object({ public: v.optional(v.array(DOInterface), []), private: v.optional(v.array(DOInterface), []) }), {}),
});

export function digitalOceanSource(root: string, http: HttpOptions = {}): Datasource {
  const s = service(root, "metadata/v1", "metadata/v1/user-data", http);
  return {
    type: "digitalocean-metadata-service",
    availabilityChanges: true,
    isAvailable: s.isAvailable,
    fetchUserdata: s.fetchUserdata,
    fetchMetadata: async () => {
      const md = emptyMetadata();
      const raw = await fetchData(`${s.base}metadata/v1.json`, http);
      if (raw.length === 0) return md;
      const m = v.parse(DOMeta, JSON.parse(text(raw)));
      const pub = m.interfaces.public[0];
      const priv = m.interfaces.private[0];
      md.publicIPv4 = ip(pub?.ipv4?.ip_address ?? "");
      md.publicIPv6 = ip(pub?.ipv6?.ip_address ?? "");
      md.privateIPv4 = ip(priv?.ipv4?.ip_address ?? "");
      md.privateIPv6 = ip(priv?.ipv6?.ip_address ?? "");
      md.hostname = m.hostname;
      m.public_keys.forEach((k, i) => (md.sshPublicKeys[String(i)] = k));
      return md;
    },
  };
}

const PacketMeta = v.object({
  hostname: v.optional(v.string(), ""),
  ssh_keys: v.optional(v.array(v.string()), []),
  network: v.optional(
    v.object({
      interfaces: v.optional(v.array(v.object({ name: v.string(), mac: v.optional(v.string(), "") })), []),
      addresses: v.optional(
        v.array(
          v.object({
            address: v.string(),
            address_family: v.number(),
            public: v.boolean(),
            cidr: v.optional(v.number(), 0),
            gateway: v.optional(v.string(), ""),
          }),
        ),
        [],
      ),
      dns: v.optional(v.array(v.string()), []),
    }),
    {},
  ),
});

export function packetSource(root: string, http: HttpOptions = {}): Datasource {
  const s = service(root, "", "userdata", http);
  return {
    type: "packet-metadata-service",
    availabilityChanges: true,
    isAvailable: s.isAvailable,
    fetchUserdata: s.fetchUserdata,
    fetchMetadata: async () => {
      const md = emptyMetadata();
      const raw = await fetchData(`${s.base}metadata`, http);
      if (raw.length === 0) return md;
      const m = v.parse(PacketMeta, JSON.parse(text(raw)));
      md.hostname = m.hostname;
      m.ssh_keys.forEach((k, i) => (md.sshPublicKeys[String(i)] = k));
      for (const a of m.network.addresses) {
        const field = a.address_family === 4 ? (a.public ? "publicIPv4" : "privateIPv4") : a.public ? "publicIPv6" : "privateIPv6";
        if (md[field] === "") md[field] = a.address;
      }
      md.network = { format: "packet", data: m.network };
      return md;
    },
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

/**
 * VMware: `guestinfo.*` keys, read from an OVF environment file (--from-vmware-ovf-env) or from
 * the hypervisor through open-vm-tools' `vmware-rpctool` (--from-vmware-guestinfo). User-data is
 * `coreos.config.data` (decoded per `coreos.config.data.encoding`) or fetched from
 * `coreos.config.url`; the addresses come from `interface.N.role` and `interface.N.ip.M.address`.
 */
export function vmwareSource(read: (key: string) => Promise<string>, available: () => Promise<boolean>, type: string, http: HttpOptions = {}): Datasource {
  return {
    type,
    availabilityChanges: false,
    isAvailable: available,
    fetchUserdata: async () => {
      const encoding = await read("coreos.config.data.encoding");
      let data: Uint8Array = new TextEncoder().encode(await read("coreos.config.data"));
      if (data.length === 0) {
        const url = await read("coreos.config.url");
        if (url !== "") data = await getRetry(url, http);
      }
      return encoding === "" ? data : decodeContent(data, encoding);
    },
    fetchMetadata: async () => {
      const md = emptyMetadata();
      md.hostname = await read("hostname");
      // Every network key that is set, for --convert-netconf vmware.
      const values: Record<string, string> = {};
      const save = async (key: string) => {
        const val = await read(key);
        if (val !== "") values[key] = val;
        return val;
      };
      for (const kind of ["server", "domain"]) for (let i = 0; i < 64 && (await save(`dns.${kind}.${i}`)) !== ""; i++);
      for (let i = 0; i < 64; i++) {
        const role = await read(`interface.${i}.role`);
        let found = (await save(`interface.${i}.name`)) !== "";
        found = (await save(`interface.${i}.mac`)) !== "" || found;
        found = (await save(`interface.${i}.dhcp`)) !== "" || found;
        for (let r = 0; r < 64; r++) {
          const gw = await save(`interface.${i}.route.${r}.gateway`);
          const dest = await save(`interface.${i}.route.${r}.destination`);
          if (gw === "" && dest === "") break;
          found = true;
        }
        for (let a = 0; a < 64; a++) {
          const address = await save(`interface.${i}.ip.${a}.address`);
          if (address === "") break;
          found = true;
          const addr = ip(address.split("/")[0] ?? "");
          if (addr === "") throw new Error(`invalid CIDR address: ${address}`);
          const v6 = addr.includes(":");
          if (role === "public") md[v6 ? "publicIPv6" : "publicIPv4"] = addr;
          else if (role === "private") md[v6 ? "privateIPv6" : "privateIPv4"] = addr;
          else if (role !== "") throw new Error(`unrecognized role: "${role}"`);
        }
        if (!found) break;
      }
      md.network = { format: "vmware", values };
      return md;
    },
  };
}

/** The `guestinfo.*` properties of an OVF environment document. */
export function ovfProperties(xml: string): Map<string, string> {
  const doc = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: "@", removeNSPrefix: true, isArray: (n) => n === "Property" }).parse(xml) as {
    Environment?: { PropertySection?: { Property?: Record<string, string>[] } };
  };
  const out = new Map<string, string>();
  for (const p of doc.Environment?.PropertySection?.Property ?? []) {
    if (typeof p["@key"] === "string") out.set(p["@key"], String(p["@value"] ?? ""));
  }
  return out;
}

export function ovfEnvSource(path: string, http: HttpOptions = {}): Datasource {
  let props: Map<string, string> | undefined;
  const read = async (key: string) => {
    props ??= ovfProperties(readFileSync(path, "utf8"));
    return props.get(`guestinfo.${key}`) ?? "";
  };
  return vmwareSource(read, async () => existsSync(path), "vmware", http);
}

export function guestinfoSource(http: HttpOptions = {}): Datasource {
  const read = async (key: string) => {
    const r = Bun.spawnSync(["vmware-rpctool", `info-get guestinfo.${key}`], { stdout: "pipe", stderr: "pipe" });
    // A key that is not set is a failure of info-get; for cloud-config it is just empty.
    return r.exitCode === 0 ? r.stdout.toString().replace(/\n$/, "") : "";
  };
  const available = async () => Bun.which("vmware-rpctool") !== null && Bun.spawnSync(["vmware-checkvm"], { stdout: "ignore", stderr: "ignore" }).exitCode === 0;
  return vmwareSource(read, available, "vmware", http);
}

/**
 * CloudSigma's server context over the second serial port (cepgo): the request `<\nKEY\n>`, the
 * answer JSON up to an EOT byte. Reads time out after 5 s (stty's `time`), so a silent port fails
 * instead of hanging.
 */
export function serverContext(device: string): (key: string) => Uint8Array {
  return (key) => {
    const stty = Bun.spawnSync(["stty", "-F", device, "115200", "raw", "-echo", "min", "0", "time", "50"], { stdout: "ignore", stderr: "pipe" });
    if (stty.exitCode !== 0) throw new Error(`${device}: ${stty.stderr.toString().trim()}`);
    const fd = openSync(device, "r+");
    try {
      writeSync(fd, `<\n${key}\n>`);
      const chunks: Buffer[] = [];
      const buf = Buffer.alloc(4096);
      for (let total = 0; total < 16 << 20; ) {
        const n = readSync(fd, buf, 0, buf.length, null);
        if (n === 0) throw new Error(`${device}: no answer for "${key}"`);
        const eot = buf.subarray(0, n).indexOf(4);
        chunks.push(Buffer.from(buf.subarray(0, eot === -1 ? n : eot)));
        if (eot !== -1) return Buffer.concat(chunks);
        total += n;
      }
      throw new Error(`${device}: answer for "${key}" too long`);
    } finally {
      closeSync(fd);
    }
  };
}

const ServerContext = v.object({
  name: v.optional(v.string(), ""),
  uuid: v.optional(v.string(), ""),
  meta: v.optional(v.record(v.string(), v.string()), {}),
  nics: v.optional(
    v.array(
      v.object({
        mac: v.optional(v.string(), ""),
        ip_v4_conf: v.nullish(v.object({ ip: v.nullish(v.object({ uuid: v.optional(v.string(), "") })) })),
        vlan: v.nullish(v.object({ uuid: v.optional(v.string(), "") })),
      }),
    ),
    [],
  ),
});

/** This machine's IPv4 address on the NIC with this MAC (a CloudSigma private VLAN). */
function localIPv4(mac: string): string {
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) if (a.mac.toLowerCase() === mac.toLowerCase() && a.family === "IPv4") return a.address;
  }
  return "";
}

/**
 * --from-cloudsigma-metadata: available on a CloudSigma machine (DMI product name) once DHCP has
 * a lease, or at once when the serial device is named explicitly.
 */
export function cloudSigmaSource(device = "/dev/ttyS1", explicit = false): Datasource {
  const fetch = serverContext(device);
  const json = (key: string) => JSON.parse(text(fetch(key))) as unknown;
  return {
    type: "server-context",
    availabilityChanges: true,
    isAvailable: async () => {
      if (explicit) return existsSync(device);
      try {
        const product = readFileSync("/sys/class/dmi/id/product_name", "latin1").slice(0, 10);
        return product === "CloudSigma" && readdirSync("/run/systemd/netif/leases/").length > 0;
      } catch {
        return false;
      }
    },
    fetchMetadata: async () => {
      const md = emptyMetadata();
      const m = v.parse(ServerContext, json(""));
      md.hostname = m.name || m.uuid;
      const key = m.meta.ssh_public_key ?? "";
      if (key !== "") md.sshPublicKeys[key.split(" ").pop()!] = key;
      for (const nic of m.nics) {
        const pub = nic.ip_v4_conf?.ip?.uuid ?? "";
        if (pub !== "") md.publicIPv4 = ip(pub);
        if ((nic.vlan?.uuid ?? "") !== "") md.privateIPv4 = localIPv4(nic.mac) || md.privateIPv4;
      }
      return md;
    },
    fetchUserdata: async () => {
      const meta = v.parse(v.record(v.string(), v.string()), json("/meta/"));
      const data = meta["cloudinit-user-data"] ?? "";
      if ((meta.base64_fields ?? "").split(",").includes("cloudinit-user-data")) {
        try {
          return decodeContent(new TextEncoder().encode(data), "base64");
        } catch {
          return new Uint8Array();
        }
      }
      return new TextEncoder().encode(data);
    },
  };
}

// The HTTP metadata services of §6.2: EC2 (with IMDSv2 when offered), GCE, DigitalOcean, Packet.
import * as v from "valibot";
import { ip, text, type Datasource } from "./datasource.ts";
import { emptyMetadata } from "./environment.ts";
import { fetchData, get, getRetry, NotFound, put, type HttpOptions } from "./http.ts";

const withSlash = (u: string) => (u.endsWith("/") ? u : `${u}/`);

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

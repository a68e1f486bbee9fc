// VMware's datasources: guestinfo keys from an OVF environment file or from the hypervisor.
import { existsSync, readFileSync } from "node:fs";
import { XMLParser } from "fast-xml-parser";
import { ip, type Datasource } from "./datasource.ts";
import { decodeContent } from "./encoding.ts";
import { emptyMetadata } from "./environment.ts";
import { getRetry, type HttpOptions } from "./http.ts";

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

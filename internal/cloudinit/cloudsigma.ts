// CloudSigma's datasource: the server context, read over a serial line.
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, writeSync } from "node:fs";
import { networkInterfaces } from "node:os";
import * as v from "valibot";
import { ip, text, type Datasource } from "./datasource.ts";
import { decodeContent } from "./encoding.ts";
import { emptyMetadata } from "./environment.ts";

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

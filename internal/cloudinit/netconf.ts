// --convert-netconf: network configuration handed over by the datasource turned into
// systemd-networkd units, as coreos-cloudinit's network package does. `debian`: an
// /etc/network/interfaces (an OpenStack config drive, Rackspace OnMetal) with physical, bond and
// VLAN interfaces; static, DHCP, manual and loopback methods; `post-up route add` routes.
// `vmware`: the guestinfo interface.N.* and dns.* keys. `packet`: the NICs bonded (802.3ad) with
// every address block on the bond. Each interface gets
// `<depth>-<name>.netdev|.network` in /run/systemd/network, where depth orders a parent after the
// bonds and VLANs stacked on it.
import type { Unit } from "./config.ts";
import type { PacketNetwork } from "./environment.ts";

export class NetconfError extends Error {}

interface Route {
  destination: string;
  gateway: string;
}

type Method =
  | { kind: "static"; addresses: string[]; nameservers: string[]; domains: string[]; routes: Route[]; hwaddress?: string }
  | { kind: "dhcp"; hwaddress?: string }
  | { kind: "manual" }
  | { kind: "loopback" };

interface Stanza {
  name: string;
  kind: "bond" | "physical" | "vlan";
  method: Method;
  options: Map<string, string[]>;
}

interface Iface {
  name: string;
  /** Matched by MAC address when there is no name (VMware). */
  mac?: string;
  kind: "bond" | "physical" | "vlan";
  method: Method;
  children: Iface[];
  depth: number;
  slaves: string[];
  bondOptions: Map<string, string>;
  /** The bond's own MAC address (Packet: the first NIC's). */
  bondMac?: string;
  vlanId: number;
  rawDevice: string;
}

function ipv4(s: string | undefined): number[] | undefined {
  const m = s === undefined ? null : /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  return parts.every((p) => p <= 255) ? parts : undefined;
}

/** Go's net.IPNet.String(): the prefix length when the mask is canonical, else the mask in hex. */
function cidr(ip: string, mask: number[]): string {
  const bits = mask.map((b) => b.toString(2).padStart(8, "0")).join("");
  const ones = bits.indexOf("0") === -1 ? 32 : bits.indexOf("0");
  const canonical = !bits.slice(ones).includes("1");
  return `${ip}/${canonical ? ones : mask.map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

function macOf(options: Map<string, string[]>, iface: string): string | undefined {
  const hw = options.get("hwaddress");
  if (!hw || hw.length !== 2 || hw[0] !== "ether") return undefined;
  if (!/^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}$/.test(hw[1]!)) throw new NetconfError(`malformed hwaddress option for "${iface}"`);
  return hw[1]!.toLowerCase().replaceAll("-", ":");
}

/** Continuation lines joined, comments and blank lines dropped, each line trimmed. */
function formatConfig(text: string): string[] {
  return text
    .replaceAll("\\\n", "")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
}

function isStanzaStart(line: string): boolean {
  return ["auto", "iface", "mapping"].includes(line.split(" ")[0]!) || line.startsWith("allow-");
}

function parseInterface(attrs: string[], lines: string[]): Stanza {
  if (attrs.length !== 3) throw new NetconfError("incorrect number of attributes");
  const [name, , methodName] = attrs as [string, string, string];
  const options = new Map<string, string[]>();
  for (const option of lines) {
    for (const multi of ["post-up", "pre-down"]) {
      if (!option.startsWith(multi)) continue;
      const sp = option.indexOf(" ");
      if (sp !== -1) options.set(multi, [...(options.get(multi) ?? []), option.slice(sp + 1)]);
    }
    if (option.startsWith("post-up") || option.startsWith("pre-down")) continue;
    const tokens = option.split(/\s+/);
    options.set(tokens[0]!, tokens.slice(1));
  }
  let method: Method;
  switch (methodName) {
    case "static": {
      const address = options.get("address");
      const netmask = options.get("netmask");
      const mask = netmask?.length === 1 ? ipv4(netmask[0]) : undefined;
      if (address?.length !== 1 || !ipv4(address[0]) || !mask) throw new NetconfError(`malformed static network config for "${name}"`);
      const routes: Route[] = [];
      const gw = options.get("gateway");
      if (gw?.length === 1) routes.push({ destination: "0.0.0.0/0", gateway: gw[0]! });
      for (const postUp of options.get("post-up") ?? []) {
        if (!postUp.startsWith("route add")) continue;
        const f = postUp.split(/\s+/);
        let dest: string | undefined;
        let destMask: number[] | undefined;
        let gateway: string | undefined;
        for (let i = 0; i < f.length - 1; i++) {
          if (f[i] === "-net") {
            const [ip, bits] = f[i + 1]!.split("/");
            dest = ip;
            if (bits !== undefined) destMask = [0, 1, 2, 3].map((k) => Math.max(0, Math.min(8, Number(bits) - 8 * k))).map((n) => (0xff << (8 - n)) & 0xff);
          } else if (f[i] === "netmask") destMask = ipv4(f[i + 1]);
          else if (f[i] === "gw") gateway = f[i + 1];
        }
        if (dest && destMask && gateway) routes.push({ destination: cidr(dest, destMask), gateway });
      }
      method = { kind: "static", addresses: [cidr(address[0]!, mask)], nameservers: options.get("dns-nameservers") ?? [], domains: [], routes, hwaddress: macOf(options, name) };
      break;
    }
    case "dhcp":
      method = { kind: "dhcp", hwaddress: macOf(options, name) };
      break;
    case "manual":
    case "loopback":
      method = { kind: methodName };
      break;
    default:
      throw new NetconfError(`invalid config method "${methodName}"`);
  }
  // ifupdown spells it vlan-raw-device; coreos-cloudinit only knew vlan_raw_device. Both link.
  const rawDevice = options.get("vlan-raw-device") ?? options.get("vlan_raw_device");
  if (rawDevice || name.includes(".")) {
    const id = name.includes(".") ? name.split(".").pop()! : name.startsWith("vlan") ? name.slice(4) : undefined;
    if (id === undefined || !/^[0-9]+$/.test(id)) throw new NetconfError(`malformed vlan name "${name}"`);
    options.set("id", [id]);
    options.set("raw_device", rawDevice ?? []);
    return { name, kind: "vlan", method, options };
  }
  return { name, kind: options.has("bond-slaves") ? "bond" : "physical", method, options };
}

export function parseDebianInterfaces(text: string): Stanza[] {
  const raw: string[][] = [];
  for (const line of formatConfig(text)) {
    if (isStanzaStart(line)) raw.push([line]);
    else if (raw.length > 0) raw.at(-1)!.push(line);
    else throw new NetconfError(`missing stanza start "${line}"`);
  }
  const out: Stanza[] = [];
  for (const [head, ...rest] of raw) {
    const tokens = head!.split(/\s+/);
    if (tokens.length < 2) throw new NetconfError(`malformed stanza start "${head}"`);
    if (tokens[0] === "iface") out.push(parseInterface(tokens.slice(1), rest));
    else if (tokens[0] !== "auto") throw new NetconfError(`unknown stanza "${tokens[0]}"`);
  }
  return out;
}

function newIface(name: string, kind: Iface["kind"], method: Method): Iface {
  return { name, kind, method, children: [], depth: 0, slaves: [], bondOptions: new Map(), vlanId: 0, rawDevice: "" };
}

function buildInterfaces(stanzas: Stanza[]): Iface[] {
  const map = new Map<string, Iface>();
  for (const s of stanzas) {
    if (s.kind === "bond") {
      const b = newIface(s.name, "bond", s.method);
      b.slaves = s.options.get("bond-slaves") ?? [];
      for (const k of ["mode", "miimon", "lacp-rate"]) {
        const v = s.options.get(`bond-${k}`);
        if (v?.length) b.bondOptions.set(k, v[0]!);
      }
      map.set(s.name, b);
      for (const slave of b.slaves) if (!map.has(slave)) map.set(slave, newIface(slave, "physical", { kind: "manual" }));
    } else if (s.kind === "physical") {
      if (s.method.kind !== "loopback") map.set(s.name, newIface(s.name, "physical", s.method));
    } else {
      const v = newIface(s.name, "vlan", s.method);
      v.vlanId = Number(s.options.get("id")![0]);
      const raw = s.options.get("raw_device") ?? [];
      if (raw.length === 1) {
        v.rawDevice = raw[0]!;
        if (!map.has(v.rawDevice)) map.set(v.rawDevice, newIface(v.rawDevice, "physical", { kind: "manual" }));
      }
      map.set(s.name, v);
    }
  }
  const names = [...map.keys()].sort();
  for (const name of names) {
    const i = map.get(name)!;
    const parents = i.kind === "vlan" ? [i.rawDevice] : i.kind === "bond" ? i.slaves : [];
    for (const p of parents) map.get(p)?.children.push(i);
  }
  const isChild = new Set([...map.values()].flatMap((i) => i.children.map((c) => c.name)));
  const setDepth = (i: Iface, seen: Set<string>): number => {
    if (seen.has(i.name)) throw new NetconfError(`interface "${i.name}" is stacked on itself`);
    let max = 0;
    for (const c of i.children) max = Math.max(max, setDepth(c, new Set([...seen, i.name])));
    i.depth = max;
    return max + 1;
  };
  for (const i of map.values()) if (!isChild.has(i.name)) setDepth(i, new Set());
  return names.map((n) => map.get(n)!);
}

function network(i: Iface): string {
  let c = `[Match]\n${i.name ? `Name=${i.name}\n` : ""}${i.mac ? `MACAddress=${i.mac}\n` : ""}\n[Network]\n`;
  for (const child of i.children) c += child.kind === "vlan" ? `VLAN=${child.name}\n` : child.kind === "bond" ? `Bond=${child.name}\n` : "";
  if (i.method.kind === "static") {
    if (i.method.domains.length > 0) c += `Domains=${i.method.domains.join(" ")}\n`;
    for (const ns of i.method.nameservers) c += `DNS=${ns}\n`;
    for (const a of i.method.addresses) c += `\n[Address]\nAddress=${a}\n`;
    for (const r of i.method.routes) c += `\n[Route]\nDestination=${r.destination}\nGateway=${r.gateway}\n`;
  } else if (i.method.kind === "dhcp") {
    c += "DHCP=true\nKeepConfiguration=dhcp-on-stop\nIPv6AcceptRA=true\n";
  }
  return c;
}

function netdev(i: Iface): string {
  if (i.kind === "bond") {
    let c = `[NetDev]\nKind=bond\nName=${i.name}\n${i.bondMac ? `MACAddress=${i.bondMac}\n` : ""}\n[Bond]\n`;
    for (const k of [...i.bondOptions.keys()].sort()) c += `${k}=${i.bondOptions.get(k)}\n`;
    return c;
  }
  if (i.kind === "vlan") {
    const mac = i.method.kind === "static" || i.method.kind === "dhcp" ? i.method.hwaddress : undefined;
    return `[NetDev]\nKind=vlan\nName=${i.name}\n${mac ? `MACAddress=${mac}\n` : ""}\n[VLAN]\nId=${i.vlanId}\n`;
  }
  return "";
}

function units(ifaces: Iface[]): Unit[] {
  const out: Unit[] = [];
  const unit = (name: string, content: string) => {
    if (content !== "") out.push({ name, content, runtime: true, enable: false, mask: false, command: "", dropIns: [] });
  };
  for (const i of ifaces) {
    const file = `${i.depth.toString(16).padStart(2, "0")}-${i.name || i.mac}`;
    unit(`${file}.netdev`, netdev(i));
    unit(`${file}.network`, network(i));
  }
  return out;
}

/** The runtime networkd units for a Debian interfaces file, in coreos-cloudinit's order. */
export function debianNetworkUnits(text: string): Unit[] {
  return units(buildInterfaces(parseDebianInterfaces(text)));
}

/** An address with its prefix (`10.0.0.5/24`) as Go's ParseCIDR takes it, or undefined. */
function parseCidr(s: string): { ip: string; mask: number[] } | undefined {
  const [ip, bits, extra] = s.split("/");
  if (extra !== undefined || bits === undefined || !/^[0-9]{1,2}$/.test(bits) || Number(bits) > 32 || !ipv4(ip)) return undefined;
  const mask = [0, 1, 2, 3].map((k) => Math.max(0, Math.min(8, Number(bits) - 8 * k))).map((n) => (0xff << (8 - n)) & 0xff);
  return { ip: ip!, mask };
}

/** The network of a CIDR (Go's ParseCIDR second result): host bits cleared. */
function networkOf(c: { ip: string; mask: number[] }): string {
  return cidr(ipv4(c.ip)!.map((b, k) => b & c.mask[k]!).join("."), c.mask);
}

/** ProcessPacketNetconf: every NIC a slave of bond0 (802.3ad), the address blocks and their routes on the bond. */
export function packetNetworkUnits(net: PacketNetwork): Unit[] {
  if (net.interfaces.length === 0) throw new NetconfError("no interfaces in the network metadata");
  const nameservers = net.dns.length > 0 ? net.dns : ["8.8.8.8", "8.8.4.4"];
  const addresses: string[] = [];
  const routes: Route[] = [];
  for (const b of net.addresses) {
    addresses.push(`${b.address}/${b.cidr}`);
    const destination = !b.public ? "10.0.0.0/8" : b.address_family === 4 ? "0.0.0.0/0" : "::/0";
    routes.push({ destination, gateway: b.gateway });
  }
  const bond = newIface("bond0", "bond", { kind: "static", addresses, nameservers, domains: [], routes });
  for (const [k, val] of Object.entries({ Mode: "802.3ad", LACPTransmitRate: "fast", MIIMonitorSec: ".2", UpDelaySec: ".2", DownDelaySec: ".2" })) bond.bondOptions.set(k, val);
  const mac = net.interfaces[0]!.mac.toLowerCase();
  if (/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(mac)) bond.bondMac = mac;
  const nics = net.interfaces.map((n, index) => {
    bond.slaves.push(n.name);
    return { ...newIface(n.name, "physical", { kind: "static", addresses: [], nameservers, domains: [], routes: [] }), children: [bond], depth: index };
  });
  return units([...nics, bond]);
}

/** ProcessVMwareNetconf: interface.N.{name,mac,dhcp,ip.M.address,route.R.gateway|destination}, dns.server.N, dns.domain.N. */
export function vmwareNetworkUnits(values: Record<string, string>): Unit[] {
  const list = (prefix: string) => {
    const out: string[] = [];
    for (let i = 0; values[`${prefix}.${i}`] !== undefined; i++) out.push(values[`${prefix}.${i}`]!);
    return out;
  };
  const nameservers = list("dns.server");
  for (const ns of nameservers) if (!ipv4(ns) && !/^[0-9a-fA-F:]+$/.test(ns)) throw new NetconfError(`invalid nameserver: "${ns}"`);
  const domains = list("dns.domain");
  const ifaces: Iface[] = [];
  for (let i = 0; ; i++) {
    const p = `interface.${i}.`;
    const dhcpText = values[`${p}dhcp`];
    if (dhcpText !== undefined && dhcpText !== "yes" && dhcpText !== "no") throw new NetconfError(`invalid DHCP option: "${dhcpText}"`);
    const addresses: string[] = [];
    for (let a = 0; values[`${p}ip.${a}.address`] !== undefined; a++) {
      const text = values[`${p}ip.${a}.address`]!;
      const c = parseCidr(text);
      if (!c) throw new NetconfError(`invalid address: "${text}"`);
      addresses.push(cidr(c.ip, c.mask));
    }
    const routes: Route[] = [];
    for (let r = 0; ; r++) {
      const gateway = values[`${p}route.${r}.gateway`];
      const destination = values[`${p}route.${r}.destination`];
      if (gateway === undefined && destination === undefined) break;
      if (destination === undefined) throw new NetconfError("missing destination key");
      if (gateway === undefined) throw new NetconfError("missing gateway key");
      if (!ipv4(gateway)) throw new NetconfError(`invalid gateway: "${gateway}"`);
      const d = parseCidr(destination);
      if (!d) throw new NetconfError(`invalid CIDR address: ${destination}`);
      routes.push({ destination: networkOf(d), gateway });
    }
    const macText = values[`${p}mac`];
    if (macText !== undefined && !/^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}$/.test(macText)) throw new NetconfError(`error while parsing MAC address: invalid MAC address ${macText}`);
    const mac = macText?.toLowerCase().replaceAll("-", ":");
    let method: Method;
    if (addresses.length > 0 || routes.length > 0) method = { kind: "static", addresses, nameservers, domains, routes, hwaddress: mac };
    else if (dhcpText === "yes") method = { kind: "dhcp", hwaddress: mac };
    else break;
    ifaces.push({ ...newIface(values[`${p}name`] ?? "", "physical", method), ...(mac ? { mac } : {}) });
  }
  return units(ifaces);
}

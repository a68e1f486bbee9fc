// What the datasource tells about the machine, and what it does to user-data: `$private_ipv4` and
// friends substituted in the text (from metadata, else COREOS_* variables), and the addresses
// merged into /etc/environment.

export interface Metadata {
  hostname: string;
  publicIPv4: string;
  privateIPv4: string;
  publicIPv6: string;
  privateIPv6: string;
  /** Key name -> OpenSSH public key. */
  sshPublicKeys: Record<string, string>;
  /** The network configuration the source hands over, for --convert-netconf. */
  network?: { format: "debian"; text: string } | { format: "vmware"; values: Record<string, string> } | { format: "packet"; data: PacketNetwork };
}

/** Packet's `network` metadata: the NICs to bond and the address blocks. */
export interface PacketNetwork {
  interfaces: { name: string; mac: string }[];
  addresses: { address: string; address_family: number; public: boolean; cidr: number; gateway: string }[];
  dns: string[];
}

export function emptyMetadata(): Metadata {
  return { hostname: "", publicIPv4: "", privateIPv4: "", publicIPv6: "", privateIPv6: "", sshPublicKeys: {} };
}

export type Substitutions = Record<"public_ipv4" | "private_ipv4" | "public_ipv6" | "private_ipv6" | "hostname", string>;

export function substitutions(md: Metadata, env: Record<string, string | undefined>): Substitutions {
  return {
    public_ipv4: md.publicIPv4 || (env.COREOS_PUBLIC_IPV4 ?? ""),
    private_ipv4: md.privateIPv4 || (env.COREOS_PRIVATE_IPV4 ?? ""),
    public_ipv6: md.publicIPv6 || (env.COREOS_PUBLIC_IPV6 ?? ""),
    private_ipv6: md.privateIPv6 || (env.COREOS_PRIVATE_IPV6 ?? ""),
    hostname: md.hostname || (env.COREOS_HOSTNAME ?? ""),
  };
}

// `$hostname` is ours and ends at a word boundary (`$hostname_suffix` is somebody's shell
// variable); the address names match as coreos-cloudinit matches them, by prefix.
const SUBST = /(\\?)\$(public_ipv4|private_ipv4|public_ipv6|private_ipv6|hostname(?![A-Za-z0-9_]))/g;

/** One pass over the text, so a substituted value is never substituted again; `\$x` is a literal `$x`. */
export function substitute(text: string, subs: Substitutions): string {
  return text.replace(SUBST, (_m, escape: string, key: keyof Substitutions) => (escape ? `$${key}` : subs[key]));
}

/** The COREOS_* lines /etc/environment gets: known addresses only. */
export function environmentVars(subs: Substitutions): Record<string, string> {
  const out: Record<string, string> = {};
  if (subs.public_ipv4) out.COREOS_PUBLIC_IPV4 = subs.public_ipv4;
  if (subs.private_ipv4) out.COREOS_PRIVATE_IPV4 = subs.private_ipv4;
  if (subs.public_ipv6) out.COREOS_PUBLIC_IPV6 = subs.public_ipv6;
  if (subs.private_ipv6) out.COREOS_PRIVATE_IPV6 = subs.private_ipv6;
  return out;
}

/**
 * system.mergeEnvContents: each existing `KEY=` line of a pending key is replaced (the first one
 * only), every other line kept as it is, the remaining keys appended in sorted order.
 */
export function mergeEnvContents(old: string, vars: Record<string, string>): string {
  const pending = new Map(Object.entries(vars));
  let text = old;
  if (text !== "" && !text.endsWith("\n")) text += "\n";
  let out = "";
  for (const line of text.split("\n").slice(0, -1)) {
    const key = /^([a-zA-Z0-9_]+)=/.exec(line)?.[1];
    const value = key === undefined ? undefined : pending.get(key);
    if (key !== undefined && value !== undefined) {
      out += `${key}=${value}\n`;
      pending.delete(key);
    } else {
      out += `${line}\n`;
    }
  }
  for (const key of [...pending.keys()].sort()) out += `${key}=${pending.get(key)}\n`;
  return out;
}

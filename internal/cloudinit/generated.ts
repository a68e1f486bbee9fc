// The files coreos-cloudinit generates from the `coreos:` section and manage_etc_hosts, as text.
import type { CloudConfig, EnvVars } from "./config.ts";

/** `[Service]` plus one `Environment="KEY=value"` per set field; "" when none is set. */
export function dropInContents(vars: EnvVars): string {
  if (vars.length === 0) return "";
  return `[Service]\n${vars.map(([k, v]) => `Environment="${k}=${v}"\n`).join("")}`;
}

/** /run/flannel/options.env: the lines joined by newlines, without a final one, as the original. */
export function flannelOptions(vars: EnvVars): string {
  return vars.map(([k, v]) => `${k}=${v}`).join("\n");
}

/**
 * /etc/coreos/update.conf from the current text: a line starting with GROUP, SERVER or
 * REBOOT_STRATEGY that is set becomes `KEY=value` (the first such line per key), the other lines
 * stay, keys not found are appended in sorted order.
 */
export function updateConf(current: string, vars: EnvVars): string {
  const subs = new Map(vars.map(([k, v]) => [k, `${k}=${v}`]));
  let out = "";
  const lines = current.split("\n");
  if (lines.at(-1) === "") lines.pop();
  for (let line of lines) {
    for (const [k, v] of subs) {
      if (line.startsWith(k)) {
        line = v;
        subs.delete(k);
        break;
      }
    }
    out += `${line}\n`;
  }
  for (const k of [...subs.keys()].sort()) out += `${subs.get(k)}\n`;
  return out;
}

/** Go's %q of a string: double quotes, backslash escapes. */
function goQuote(s: string): string {
  return JSON.stringify(s).replace(/[\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

export function oemRelease(oem: CloudConfig["coreos"]["oem"]): string {
  return [
    `ID=${oem.id}`,
    `VERSION_ID=${oem.versionId}`,
    `NAME=${goQuote(oem.name)}`,
    `HOME_URL=${goQuote(oem.homeUrl)}`,
    `BUG_REPORT_URL=${goQuote(oem.bugReportUrl)}`,
    "",
  ].join("\n");
}

export function etcHosts(hostname: string): string {
  return `127.0.0.1 ${hostname}\n`;
}

/** coreos-cloudinit keeps the first label and at most 63 bytes of a hostname. */
export function shortHostname(name: string): string {
  return name.split(".")[0]!.slice(0, 63);
}

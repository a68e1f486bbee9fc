// Which reboot strategy locksmithd follows (B3): REBOOT_STRATEGY from the update.conf files that
// the systemd unit loads as EnvironmentFile=, later files over earlier ones, the process
// environment over both (an explicit `REBOOT_STRATEGY=… locksmithd` is what the user meant).

export type Strategy = "reboot" | "etcd-lock" | "off";

/** Read in this order; a missing file is skipped (the unit's `EnvironmentFile=-`). */
export const UPDATE_CONF_FILES = [
  "/usr/share/coreos/update.conf",
  "/usr/share/flatcar/update.conf",
  "/etc/coreos/update.conf",
  "/etc/flatcar/update.conf",
];

/** systemd EnvironmentFile syntax, the part update.conf uses: KEY=value, # comments, optional quotes. */
export function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const eq = line.indexOf("=");
    if (eq <= 0) continue;
    let value = line.slice(eq + 1).trim();
    if (value.length >= 2 && (value[0] === '"' || value[0] === "'") && value.endsWith(value[0]!)) value = value.slice(1, -1);
    out[line.slice(0, eq).trim()] = value;
  }
  return out;
}

/**
 * The strategy as a string: "reboot" when unset (the default since v0.6.0). Anything unknown is
 * returned as is; the daemon refuses it only when it is time to reboot, as the original does.
 */
export function strategyFrom(files: string[], env: Record<string, string | undefined>): string {
  let s: string | undefined;
  for (const f of files) s = parseEnvFile(f).REBOOT_STRATEGY ?? s;
  s = env.REBOOT_STRATEGY ?? s;
  return s === undefined || s === "" ? "reboot" : s;
}

export function isStrategy(s: string): s is Strategy {
  return s === "reboot" || s === "etcd-lock" || s === "off";
}

// The system files an image ships for the update engine (spec §2.5, §2.7): update-engine.service
// and the com.coreos.update1 bus policy. Pure: `coreos update-engine install` writes them.
import { update1Policy } from "../dbus/update1.ts";

export const SERVICE_PATH = "/usr/lib/systemd/system/update-engine.service";
export const POLICY_PATH = "/usr/share/dbus-1/system.d/com.coreos.update1.conf";
export const DEFAULT_BIN = "/usr/sbin/update_engine";

/** A file under the image root: an absolute path and its full text. */
export interface SystemFile {
  path: string;
  content: string;
}

/**
 * The executable word of ExecStart= (systemd.service(5) "Command lines"): `%` would start a
 * specifier, so it is doubled; whitespace and `;` need the double-quoted form. Null for what
 * systemd refuses in an executable name (string_is_safe: quotes, backslashes, control
 * characters) and for a relative path.
 */
export function execWord(path: string): string | null {
  if (!path.startsWith("/") || /[\x00-\x1f\x7f"'\\]/.test(path)) return null;
  const w = path.replace(/%/g, "%%");
  return /[\s;]/.test(w) ? `"${w}"` : w;
}

/**
 * update-engine.service as CoreOS ships it. The original's `BlockIOWeight=100` is a cgroup v1
 * setting systemd now only translates (and newer releases drop); IOWeight=20 is what systemd
 * translates it to (100 of blkio's default 500 → 20 of io's 100).
 */
export function updateEngineService(bin: string = DEFAULT_BIN): string {
  const word = execWord(bin);
  if (word === null) throw new Error(`update_engine path "${bin}" is not usable in ExecStart= (want an absolute path without quotes, backslashes or control characters)`);
  return `[Unit]
Description=Update Engine
ConditionVirtualization=!container
ConditionPathExists=!/usr/.noupdate

[Service]
Type=dbus
BusName=com.coreos.update1
ExecStart=${word} -foreground -logtostderr
IOWeight=20
Restart=always
RestartSec=30

[Install]
WantedBy=default.target
`;
}

/** Every file `install` writes, with the paths they take on the image. */
export function systemFiles(bin: string = DEFAULT_BIN): SystemFile[] {
  return [
    { path: SERVICE_PATH, content: updateEngineService(bin) },
    { path: POLICY_PATH, content: update1Policy() },
  ];
}

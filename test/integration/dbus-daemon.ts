// A private dbus-daemon for tests: a config that allows everything, listening on a socket in a
// temp dir; DBUS_SYSTEM_BUS_ADDRESS pointed at it makes it "the system bus" for us and for
// dbus-send/dbus-monitor (their --system honours that variable too).
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { cleanup, tempDir } from "../helpers/procs.ts";

export interface PrivateBus {
  address: string;
  env: Record<string, string>;
  dir: string;
  stop(): Promise<void>;
}

/** `dir`: reuse a directory (same socket path, as a restarted system bus); the caller removes it. */
export async function startBus(reuse?: string): Promise<PrivateBus> {
  const dir = reuse ?? tempDir("coreos-dbus-");
  const config = join(dir, "bus.conf");
  writeFileSync(
    config,
    `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=${join(dir, "bus")}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_type="method_return"/>
    <allow send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="signal"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
`,
  );
  const proc: Subprocess<"ignore", "pipe", "pipe"> = Bun.spawn(["dbus-daemon", `--config-file=${config}`, "--nofork", "--print-address"], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const reader = proc.stdout.getReader();
  let text = "";
  const deadline = Date.now() + 10_000;
  while (!text.includes("\n") && Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  const address = text.trim();
  if (!address.startsWith("unix:")) {
    proc.kill();
    throw new Error(`dbus-daemon did not start: ${await new Response(proc.stderr).text()}`);
  }
  return {
    address,
    env: { DBUS_SYSTEM_BUS_ADDRESS: address },
    dir,
    async stop() {
      proc.kill();
      await proc.exited;
      if (reuse === undefined) cleanup(dir);
    },
  };
}

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

const OPEN_POLICY = `  <policy context="default">
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
`;

// The stock system.conf's default context: nobody owns names or calls methods unless a policy
// file says so; signals and replies flow.
const SYSTEM_POLICY = `  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
  </policy>
`;

export interface BusOptions {
  /** Reuse a directory (same socket path, as a restarted system bus); the caller removes it. */
  reuse?: string;
  /** A policy file included after the stock system bus's default policy instead of allowing everything. */
  policy?: string;
}

export async function startBus(o: BusOptions = {}): Promise<PrivateBus> {
  const reuse = o.reuse;
  const dir = reuse ?? tempDir("coreos-dbus-");
  const config = join(dir, "bus.conf");
  let policy = OPEN_POLICY;
  if (o.policy !== undefined) {
    writeFileSync(join(dir, "policy.conf"), o.policy);
    policy = `${SYSTEM_POLICY}  <include>${join(dir, "policy.conf")}</include>\n`;
  }
  writeFileSync(
    config,
    `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=${join(dir, "bus")}</listen>
  <auth>EXTERNAL</auth>
${policy}</busconfig>
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

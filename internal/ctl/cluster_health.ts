// cluster-health: list the members without syncing, then ask each member's client URLs for
// /health. Exit 0 only when every member is healthy, 5 otherwise.
import { EndpointError } from "../kvclient/errors.ts";
import type { Member } from "../kvclient/schema.ts";
import { errorText, handleError } from "./format.ts";
import { Exit, ExitCode } from "./io.ts";
import type { CommandFn } from "./key_commands.ts";
import type { Session } from "./session.ts";

const FOREVER_PAUSE_MS = 10_000;

export const clusterHealthCommand: CommandFn = async (s, _args, f) => {
  const c = await s.mustNewClientNoSync();
  let members: Member[];
  try {
    members = await c.members({ signal: s.interrupt });
  } catch (e) {
    if (s.interrupt.aborted) return;
    s.io.out("cluster may be unhealthy: failed to list members\n");
    handleError(s.io, ExitCode.ServerError, e);
  }
  for (;;) {
    let healthy = 0;
    for (const m of members) if (await checkMember(s, m)) healthy++;
    if (healthy === members.length) s.io.out("cluster is healthy\n");
    else if (healthy === 0) s.io.out("cluster is unavailable\n");
    else s.io.out("cluster is degraded\n");
    if (f.get("forever") !== true) {
      if (healthy !== members.length) throw new Exit(ExitCode.ClusterNotHealthy);
      return;
    }
    s.io.out("\nnext check after 10 second...\n\n");
    if (!(await pause(s.interrupt, FOREVER_PAUSE_MS))) return;
  }
};

async function checkMember(s: Session, m: Member): Promise<boolean> {
  if (m.clientURLs.length === 0) {
    s.io.out(`member ${m.id} is unreachable: no available published client urls\n`);
    return false;
  }
  for (const url of m.clientURLs) {
    let ok: boolean;
    try {
      ok = await (await s.memberClient(url)).health(url, { signal: s.totalTimeout() });
    } catch (e) {
      const why = e instanceof EndpointError ? `Get "${url}/health": ${e.message}` : errorText(e);
      s.io.out(`failed to check the health of member ${m.id} on ${url}: ${why}\n`);
      continue;
    }
    s.io.out(ok ? `member ${m.id} is healthy: got healthy result from ${url}\n` : `member ${m.id} is unhealthy: got unhealthy result from ${url}\n`);
    return ok;
  }
  s.io.out(`member ${m.id} is unreachable: [${m.clientURLs.join(" ")}] are all unreachable\n`);
  return false;
}

/** Sleeps; false when interrupted. */
function pause(signal: AbortSignal, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const t = setTimeout(() => resolve(true), ms);
    signal.addEventListener("abort", () => (clearTimeout(t), resolve(false)), { once: true });
  });
}

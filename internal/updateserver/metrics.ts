// GET /metrics in the Prometheus text format: the fleet by app, channel and version (Nebraska's
// application_instances_per_channel), failed updates, and the Omaha endpoint's own counters.
import type { Committer } from "./commit.ts";
import type { OmahaCounters } from "./omaha-http.ts";
import type { Store } from "./store.ts";

const esc = (s: string): string => s.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");

export function metricsText(store: Store, counters: OmahaCounters, committer: Committer): string {
  const cat = store.cat();
  const lines: string[] = [];
  const family = (name: string, type: string, help: string) => lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);

  family("application_instances_per_channel", "gauge", "Instances per application, channel and running version.");
  const perChannel = store.db
    .query(
      `SELECT ia.app_id AS app, coalesce(g.channel_id, '') AS channel, ia.version, count(*) AS n
       FROM instance_app ia LEFT JOIN grp g ON g.id = ia.group_id GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`,
    )
    .all() as { app: string; channel: string; version: string; n: number }[];
  for (const r of perChannel) {
    const app = cat.apps.get(r.app)?.name ?? r.app;
    const channel = cat.channels.get(r.channel)?.name ?? "";
    lines.push(`application_instances_per_channel{application="${esc(app)}",channel="${esc(channel)}",version="${esc(r.version)}"} ${r.n}`);
  }

  family("failed_updates", "gauge", "Update attempts that ended in an error, per application and group.");
  const failed = store.db
    .query("SELECT app_id AS app, group_id AS grp, count(*) AS n FROM status_history WHERE status = 3 GROUP BY 1, 2 ORDER BY 1, 2")
    .all() as { app: string; grp: string; n: number }[];
  for (const r of failed) {
    const app = cat.apps.get(r.app)?.name ?? r.app;
    const group = cat.groups.get(r.grp)?.name ?? r.grp;
    lines.push(`failed_updates{application="${esc(app)}",group="${esc(group)}"} ${r.n}`);
  }

  family("instances_per_status", "gauge", "Instances per group and status.");
  const perStatus = store.db.query("SELECT group_id AS grp, status, count(*) AS n FROM instance_app GROUP BY 1, 2 ORDER BY 1, 2").all() as { grp: string; status: number; n: number }[];
  for (const r of perStatus) {
    const group = cat.groups.get(r.grp)?.name ?? r.grp;
    lines.push(`instances_per_status{group="${esc(group)}",status="${r.status}"} ${r.n}`);
  }

  const counter = (name: string, help: string, v: number) => {
    family(name, "counter", help);
    lines.push(`${name} ${v}`);
  };
  counter("omaha_requests_total", "Omaha requests received.", counters.requests);
  counter("omaha_bad_requests_total", "Omaha requests refused with 400 (not XML, not protocol 3.0, too large).", counters.badRequests);
  counter("omaha_update_checks_total", "Update checks answered.", counters.updateChecks);
  counter("omaha_updates_offered_total", "Update checks answered with an update.", counters.updatesOffered);
  counter("omaha_events_total", "Events received.", counters.events);
  counter("omaha_commit_batches_total", "Transactions committed for Omaha requests (group commit).", committer.batches);
  return `${lines.join("\n")}\n`;
}

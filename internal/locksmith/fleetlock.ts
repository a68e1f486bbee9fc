// The FleetLock protocol (Zincati's reboot manager API) on the same semaphore, so Fedora CoreOS
// machines and locksmithd share one set of slots: POST /v1/pre-reboot takes a slot, POST
// /v1/steady-state gives it back. Both are idempotent, as Zincati retries them.
import { Hono } from "hono";
import * as v from "valibot";
import { logger } from "../log/log.ts";
import { isCompareFailed, type EtcdLock } from "./etcdlock.ts";
import { holds, SemaphoreError } from "./semaphore.ts";

const log = logger("locksmith");

const BodySchema = v.object({
  client_params: v.object({
    id: v.optional(v.pipe(v.string(), v.minLength(1))),
    node_uuid: v.optional(v.pipe(v.string(), v.minLength(1))),
    group: v.optional(v.string()),
  }),
});

/** Zincati's default group is "default"; it means locksmith's default semaphore. */
export function fleetGroup(group: string | undefined): string {
  return group === undefined || group === "default" ? "" : group;
}

/** Swap races are the server's business, not the client's: retried here a bounded number of times. */
const CAS_TRIES = 50;

async function withRetry<T>(f: () => Promise<T>): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await f();
    } catch (e) {
      if (!isCompareFailed(e) || i >= CAS_TRIES) throw e;
      await Bun.sleep(Math.random() * Math.min(50, i * 5));
    }
  }
}

function failure(kind: string, value: string) {
  return { kind, value };
}

export function fleetLockApp(lockFor: (group: string) => Promise<EtcdLock>): Hono {
  const app = new Hono();

  async function parse(c: { req: { header(n: string): string | undefined; text(): Promise<string> } }) {
    if (c.req.header("fleet-lock-protocol") !== "true") return { error: failure("missing_header", "fleet-lock-protocol header must be \"true\"") };
    let json: unknown;
    try {
      json = JSON.parse(await c.req.text());
    } catch {
      return { error: failure("bad_body", "body is not JSON") };
    }
    const r = v.safeParse(BodySchema, json);
    const id = r.success ? (r.output.client_params.id ?? r.output.client_params.node_uuid) : undefined;
    if (!r.success || id === undefined) return { error: failure("bad_body", "body needs client_params.id (or node_uuid) and client_params.group") };
    return { id, group: fleetGroup(r.output.client_params.group) };
  }

  app.post("/v1/pre-reboot", async (c) => {
    const p = await parse(c);
    if ("error" in p) return c.json(p.error, 400);
    try {
      const lock = await lockFor(p.group);
      // Zincati asks again until it reboots: a slot it holds is granted again, even at 0
      // (where B1's Lock would answer "semaphore is at 0").
      if (!holds((await lock.get()).sem, p.id)) {
        await withRetry(() => lock.lock(p.id)).catch((e) => {
          if (!(e instanceof SemaphoreError && e.kind === "exists")) throw e;
        });
      }
      log.info(`fleetlock: ${p.id} took a reboot slot in ${lock.key}`);
      return c.json({}, 200);
    } catch (e) {
      if (e instanceof SemaphoreError) return c.json(failure("failed_lock", e.message), 409);
      return c.json(failure("internal_error", (e as Error).message), 500);
    }
  });

  app.post("/v1/steady-state", async (c) => {
    const p = await parse(c);
    if ("error" in p) return c.json(p.error, 400);
    try {
      const lock = await lockFor(p.group);
      await withRetry(() => lock.unlockIfHeld(p.id));
      return c.json({}, 200);
    } catch (e) {
      return c.json(failure("failed_unlock", (e as Error).message), 500);
    }
  });

  return app;
}

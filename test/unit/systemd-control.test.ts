// The supervisor's control socket: NDJSON answers in order, bad requests answered without closing,
// validation of answers on the client side, stale and live socket files.
import { afterAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import { join } from "node:path";
import { call, ControlError, ControlServer, NotRunningError, type Answer, type Request } from "../../internal/systemd/control.ts";
import { cleanup, tempDir } from "../helpers/procs.ts";

const dir = tempDir("coreos-control-");
afterAll(() => cleanup(dir));

/** Answers from a fixed table; "slow" takes a while so ordering can be checked. */
const handler = {
  seen: [] as Request[],
  async handle(req: Request): Promise<Answer> {
    this.seen.push(req);
    if (req.method === "status" && req.unit === "slow.service") await Bun.sleep(50);
    if (req.method === "status" && req.unit === "missing.service") throw new ControlError("not-found", "Unit missing.service not found.");
    if (req.method === "status") return { ok: true, status: { name: req.unit, load: "loaded", active: "active", sub: "running" } };
    return { ok: true };
  },
};

/** Sends raw lines on one connection and collects `n` answer lines. */
function exchange(path: string, lines: string[], n: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(path);
    let buf = "";
    sock.setEncoding("utf8");
    sock.on("data", (d: string) => {
      buf += d;
      const got = buf.split("\n").filter(Boolean);
      if (got.length >= n) {
        sock.destroy();
        resolve(got);
      }
    });
    sock.on("error", reject);
    sock.on("connect", () => sock.write(lines.map((l) => `${l}\n`).join("")));
  });
}

describe("control socket", () => {
  test("answers in request order; bad lines get an error and the connection stays usable", async () => {
    const path = join(dir, "a.sock");
    const server = new ControlServer(path, handler);
    await server.start();
    try {
      const answers = await exchange(
        path,
        ['{"method":"status","unit":"slow.service"}', "not json", '{"method":"frobnicate"}', '{"method":"run","command":"explode","unit":"x.service"}', '{"method":"status","unit":"fast.service"}'],
        5,
      );
      expect(JSON.parse(answers[0]!).status.name).toBe("slow.service");
      expect(JSON.parse(answers[1]!)).toEqual({ ok: false, error: "bad request: not JSON", code: "bad-request" });
      expect(JSON.parse(answers[2]!)).toMatchObject({ ok: false, code: "bad-request" });
      expect(JSON.parse(answers[3]!)).toMatchObject({ ok: false, code: "bad-request" });
      expect(JSON.parse(answers[4]!).status.name).toBe("fast.service");

      expect((await call(path, { method: "status", unit: "x.service" })).status?.sub).toBe("running");
      const refused = await call(path, { method: "status", unit: "missing.service" }).catch((e: ControlError) => [e.constructor.name, e.code, e.message]);
      expect(refused).toEqual(["ControlError", "not-found", "Unit missing.service not found."]);

      const second = new ControlServer(path, handler);
      await expect(second.start()).rejects.toThrow("another supervisor is serving this socket");
    } finally {
      await server.close();
    }
    await expect(call(path, { method: "list" })).rejects.toBeInstanceOf(NotRunningError);
  });

  test("a stale socket file is replaced", async () => {
    const path = join(dir, "stale.sock");
    writeFileSync(path, "");
    const server = new ControlServer(path, handler);
    await server.start();
    try {
      expect((await call(path, { method: "daemon-reload" })).ok).toBe(true);
    } finally {
      await server.close();
    }
  });

  test("an answer that is not the protocol is an error on the client", async () => {
    const path = join(dir, "odd.sock");
    const odd = Bun.listen({ unix: path, socket: { data(s) { s.write('{"ok":true,"status":{"name":1}}\n'); } } });
    try {
      await expect(call(path, { method: "status", unit: "a.service" })).rejects.toThrow("unexpected answer");
    } finally {
      odd.stop(true);
    }
  });
});

// Watch fan-out: N long-poll watchers (GET /v2/keys/w?wait=true) on one key over raw TCP
// (Bun.connect, one socket each), then one PUT; measures the time from writing the PUT to the
// moment the LAST watcher has its complete response.
//
// Why raw TCP and not fetch: Bun's fetch caps concurrent requests (BUN_CONFIG_MAX_HTTP_REQUESTS,
// 256 by default), so 1,000 watches through fetch would be queued by the client, not the server.
// Each socket here does one request; the parser only scans for the end of the headers and then
// the end of the body (chunked or Content-Length), so per-event client work is a few µs. The
// harness CPU time spent inside the measurement window is reported next to the result so a
// client-side bottleneck would show.
import type { Socket } from "bun";

class HttpConn {
  /** unconsumed bytes (headers while they are incomplete, then a partial chunk, if any) */
  buf: Buffer = Buffer.alloc(0);
  headersAt = 0;
  doneAt = 0;
  status = 0;
  closed = false;
  private inBody = false;
  private chunked = false;
  private contentLength = -1;
  private bodySeen = 0;
  private bodyText = "";

  constructor(readonly onHeaders: () => void, readonly onDone: (c: HttpConn) => void) {}

  feed(d: Buffer): void {
    if (this.doneAt) return;
    // common case in the measured window: nothing pending, parse the packet in place (no copy)
    let b = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    if (!this.inBody) {
      const i = b.indexOf("\r\n\r\n");
      if (i < 0) {
        this.buf = Buffer.from(b);
        return;
      }
      const head = b.subarray(0, i).toString("latin1");
      this.status = Number(head.slice(9, 12));
      this.chunked = /\r\ntransfer-encoding:\s*chunked/i.test(head);
      const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head);
      this.contentLength = cl ? Number(cl[1]) : -1;
      this.inBody = true;
      this.headersAt = performance.now();
      this.onHeaders();
      b = b.subarray(i + 4);
    }
    if (this.bodyText.length < 512) this.bodyText += b.subarray(0, 512).toString("latin1");
    if (this.chunked) {
      // walk complete chunks; the response is complete at the zero-size chunk
      let p = 0;
      for (let guard = 0; guard < 100000; guard++) {
        let size = 0;
        let q = p;
        for (; q < b.length; q++) {
          const c = b[q]!;
          const v = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;
          if (v < 0) break;
          size = size * 16 + v;
        }
        const eol = b.indexOf(10, q); // end of the size line (extensions ignored)
        if (eol < 0) break;
        if (size === 0) return this.finish();
        const next = eol + 1 + size + 2;
        if (next > b.length) break;
        p = next;
      }
      this.buf = p < b.length ? Buffer.from(b.subarray(p)) : Buffer.alloc(0);
    } else if (this.contentLength >= 0) {
      this.bodySeen += b.length;
      this.buf = Buffer.alloc(0);
      if (this.bodySeen >= this.contentLength) this.finish();
    } else {
      this.buf = Buffer.alloc(0); // body ends when the server closes (see close())
    }
  }

  close(): void {
    this.closed = true;
    if (this.inBody && !this.chunked && this.contentLength < 0) this.finish();
  }

  /** the first bytes of the body (raw, chunk framing included) */
  body(): string {
    return this.bodyText;
  }

  private finish(): void {
    if (this.doneAt) return;
    this.doneAt = performance.now();
    this.onDone(this);
  }
}

/** Rejects if `p` has not settled within `ms`. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: Timer | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error(`${what}: no answer within ${ms} ms`)), ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function connect(host: string, port: number, conn: HttpConn): Promise<Socket<HttpConn>> {
  return within(connectRaw(host, port, conn), 10_000, `connect to ${host}:${port}`);
}

function connectRaw(host: string, port: number, conn: HttpConn): Promise<Socket<HttpConn>> {
  return Bun.connect<HttpConn>({
    hostname: host,
    port,
    data: conn,
    socket: {
      data(s, d) {
        s.data.feed(d);
      },
      close(s) {
        s.data.close();
      },
      error(s) {
        s.data.close();
      },
    },
  });
}

export interface WatchRound {
  /** ms from writing the PUT to the last watcher's complete response */
  lastMs: number;
  firstMs: number;
  medianMs: number;
  /** ms until the PUT's own response */
  putMs: number;
  /** watchers that got their event */
  got: number;
  /** watchers whose response headers arrived before the PUT */
  headersBefore: number;
  /** watchers known registered before the PUT: max(headers seen, /v2/stats/store watchers) */
  registered: number;
  non200: number;
  /** harness CPU ms used between the PUT and the last event */
  harnessCpuMs: number;
}

export interface WatchOptions {
  url: string;
  watchers: number;
  rounds: number;
  log: (s: string) => void;
  /** bound per round for the events to arrive */
  roundTimeoutMs?: number;
}

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

export function median(xs: number[]): number {
  return pct(xs, 50);
}

/** The `watchers` figure of GET /v2/stats/store (-1 if the server has none). */
async function storeWatchers(url: string): Promise<number> {
  try {
    const r = await fetch(`${url}/v2/stats/store`, { signal: AbortSignal.timeout(5000) });
    if (!r.ok) {
      await r.arrayBuffer();
      return -1;
    }
    const j = (await r.json()) as { watchers?: unknown };
    return typeof j.watchers === "number" ? j.watchers : -1;
  } catch {
    return -1;
  }
}

export async function runWatch(o: WatchOptions): Promise<WatchRound[]> {
  const u = new URL(o.url);
  const host = u.hostname;
  const port = Number(u.port);
  const rounds: WatchRound[] = [];
  const roundTimeoutMs = o.roundTimeoutMs ?? 15_000;

  // make sure the key exists
  const r0 = await fetch(`${o.url}/v2/keys/w`, {
    signal: AbortSignal.timeout(10_000),
    method: "PUT",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: "value=init",
  });
  await r0.arrayBuffer();

  // round -1 is a warm-up (JIT, connection paths) and is not counted
  for (let round = -1; round < o.rounds; round++) {
    const sockets: Socket<HttpConn>[] = [];
    try {
      let headers = 0;
      let done = 0;
      let lastHeaderAt = performance.now();
      let resolveAll: () => void = () => {};
      const allDone = new Promise<void>((res) => (resolveAll = res));
      const onHeaders = () => {
        headers++;
        lastHeaderAt = performance.now();
      };
      const onDone = () => {
        done++;
        if (done >= o.watchers) resolveAll();
      };
      const conns: HttpConn[] = [];
      const req = `GET /v2/keys/w?wait=true HTTP/1.1\r\nHost: ${host}:${port}\r\n\r\n`;
      // connect in batches so the listen backlog never overflows
      const batch = 100;
      for (let i = 0; i < o.watchers; i += batch) {
        const n = Math.min(batch, o.watchers - i);
        const ps: Promise<Socket<HttpConn>>[] = [];
        for (let j = 0; j < n; j++) {
          const c = new HttpConn(onHeaders, onDone);
          conns.push(c);
          ps.push(connect(host, port, c));
        }
        const settled = await Promise.allSettled(ps);
        for (const r of settled) if (r.status === "fulfilled") sockets.push(r.value);
        const failed = settled.find((r): r is PromiseRejectedResult => r.status === "rejected");
        if (failed) throw failed.reason;
        for (const s of sockets.slice(-n)) s.write(req);
      }
      // wait until every watch is registered: all response headers are in (etcd flushes them
      // once the watcher is in place), or /v2/stats/store counts all the watchers (for a server
      // that sends no headers before the event); failing both, until header progress and the
      // watcher count stall for 1 s; bounded at 15 s
      const regStart = performance.now();
      lastHeaderAt = performance.now();
      let statWatchers = -1;
      let lastStat = -1;
      for (let i = 0; i < 1500; i++) {
        if (headers >= o.watchers) break;
        statWatchers = await storeWatchers(o.url);
        if (statWatchers >= o.watchers) break;
        if (statWatchers !== lastStat) {
          lastStat = statWatchers;
          lastHeaderAt = performance.now();
        }
        if (performance.now() - lastHeaderAt > 1000) break;
        if (performance.now() - regStart > 15_000) break;
        await Bun.sleep(10);
      }
      const headersBefore = headers;
      const registered = Math.max(headers, statWatchers);
      const early = conns.filter((c) => c.doneAt).length;
      if (early) throw new Error(`${early} watchers completed before the PUT (status ${conns.find((c) => c.doneAt)?.status})`);
      await Bun.sleep(100);

      // the trigger: a pre-connected raw socket so t0 is exactly when the PUT is written
      let putDone = false;
      const putConn = new HttpConn(() => {}, () => (putDone = true));
      const putSock = await connect(host, port, putConn);
      sockets.push(putSock);
      const body = `value=round${round}`;
      const put =
        `PUT /v2/keys/w HTTP/1.1\r\nHost: ${host}:${port}\r\n` +
        `Content-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      putSock.write(put);
      let timer: Timer | undefined;
      const timedOut = await Promise.race([
        allDone.then(() => false),
        new Promise<boolean>((res) => (timer = setTimeout(() => res(true), roundTimeoutMs))),
      ]);
      clearTimeout(timer);
      const cpu = process.cpuUsage(cpu0);
      for (let i = 0; i < 200 && !putDone; i++) await Bun.sleep(5);
      const times = conns.filter((c) => c.doneAt).map((c) => c.doneAt - t0);
      const non200 = conns.filter((c) => c.doneAt && c.status !== 200).length;
      const got = times.length;
      const res: WatchRound = {
        lastMs: got ? Math.max(...times) : NaN,
        firstMs: got ? Math.min(...times) : NaN,
        medianMs: median(times),
        putMs: putConn.doneAt ? putConn.doneAt - t0 : NaN,
        got,
        headersBefore,
        registered,
        non200,
        harnessCpuMs: (cpu.user + cpu.system) / 1000,
      };
      if (round === 0) {
        const sample = conns.find((c) => c.doneAt)?.body() ?? "";
        if (!/round0/.test(sample)) o.log(`  warning: first watcher body does not carry the value: ${sample.slice(0, 200)}`);
      }
      o.log(
        `  ${round < 0 ? "warm-up round" : `round ${round + 1}/${o.rounds}`}: last ${res.lastMs.toFixed(1)} ms, median ${res.medianMs.toFixed(1)} ms, ` +
          `first ${res.firstMs.toFixed(1)} ms, put ${res.putMs.toFixed(1)} ms; got ${got}/${o.watchers}` +
          (timedOut ? " (TIMED OUT)" : "") +
          `, registered before PUT ${registered} (headers ${headersBefore}), non-200 ${non200}, harness cpu ${res.harnessCpuMs.toFixed(1)} ms`,
      );
      if (round >= 0) rounds.push(res);
      if (timedOut || got < o.watchers) {
        throw new Error(`only ${got}/${o.watchers} watchers got the event within ${roundTimeoutMs} ms`);
      }
    } finally {
      for (const s of sockets) s.terminate();
      await Bun.sleep(200);
    }
  }
  return rounds;
}

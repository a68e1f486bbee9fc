// A deliberately trivial long-poll server used to measure the watch fan-out HARNESS floor: it
// answers `GET ...?wait=true` with chunked headers at once, and on any PUT writes one small event
// to every waiting socket in a tight loop. Running the watch scenario against it shows how much
// of the measured "last watcher" time is the client's own cost (1,000 sockets, one event each).
//
//   bun test/bench/kv-watch-floor.ts   -> prints "READY <port>" and serves until killed
import { track } from "./kv-procs.ts";
import type { Socket } from "bun";

interface Conn {
  buf: string;
}

function serve(): void {
  const waiting = new Set<Socket<Conn>>();
  let index = 1;
  const server = Bun.listen<Conn>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(s) {
        s.data = { buf: "" };
      },
      data(s, d) {
        s.data.buf += d.toString("latin1");
        for (let guard = 0; guard < 1000; guard++) {
          const buf = s.data.buf;
          const he = buf.indexOf("\r\n\r\n");
          if (he < 0) return;
          const head = buf.slice(0, he);
          const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head);
          const len = cl ? Number(cl[1]) : 0;
          if (buf.length < he + 4 + len) return;
          const body = buf.slice(he + 4, he + 4 + len);
          s.data.buf = buf.slice(he + 4 + len);
          if (head.startsWith("GET ") && head.includes("wait=true")) {
            s.write(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Etcd-Index: ${index}\r\nTransfer-Encoding: chunked\r\n\r\n`);
            waiting.add(s);
          } else if (head.startsWith("PUT ")) {
            index++;
            const value = decodeURIComponent(body.replace(/^value=/, ""));
            const ev = JSON.stringify({ action: "set", node: { key: "/w", value, modifiedIndex: index, createdIndex: index } }) + "\n";
            const out = `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${ev.length}\r\n\r\n${ev}`;
            s.write(out);
            const chunk = `${ev.length.toString(16)}\r\n${ev}\r\n0\r\n\r\n`;
            for (const w of waiting) w.write(chunk);
            waiting.clear();
          } else {
            s.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}");
          }
        }
      },
      close(s) {
        waiting.delete(s);
      },
    },
  });
  console.log(`READY ${server.port}`);
}

if (import.meta.main) serve();

/** Starts the floor server in its own process (so it does not share the harness's thread). */
export async function startFloor(): Promise<{ url: string; stop: () => Promise<void> }> {
  const proc = track(Bun.spawn([process.execPath, import.meta.path], { stdout: "pipe", stderr: "inherit" }));
  const reader = proc.stdout.getReader();
  const dec = new TextDecoder();
  let out = "";
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const r = await Promise.race([reader.read(), Bun.sleep(10_000).then(() => undefined)]);
    if (!r || r.done) break;
    out += dec.decode(r.value, { stream: true });
    const m = /READY (\d+)/.exec(out);
    if (m) {
      reader.releaseLock();
      return {
        url: `http://127.0.0.1:${m[1]}`,
        async stop() {
          proc.kill("SIGKILL");
          await proc.exited;
        },
      };
    }
  }
  proc.kill("SIGKILL");
  throw new Error(`watch floor server did not start: ${out}`);
}

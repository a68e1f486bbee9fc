// Newline-delimited messages over a stream socket: the framing and the socket file of every
// control socket coreos serves (the update engine's, the supervisor's); and a child's output read
// line by line.
import { chmodSync, existsSync, mkdirSync, rmSync } from "node:fs";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { dirname } from "node:path";

/** No request or answer comes near this; a peer sending more without a newline is cut off. */
export const MAX_LINE = 4 * 1024 * 1024;

/** Splits the socket's stream into lines (blank ones dropped) and hands each to `onLine`. */
export function socketLines(sock: Socket, onLine: (line: string) => void): void {
  let buf = "";
  sock.setEncoding("utf8");
  sock.on("data", (chunk: string) => {
    buf += chunk;
    if (buf.length > MAX_LINE && !buf.includes("\n")) {
      sock.destroy(new Error(`line longer than ${MAX_LINE} bytes`));
      return;
    }
    let nl: number;
    while ((nl = buf.indexOf("\n")) !== -1) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.trim() !== "") onLine(line);
    }
  });
}

/**
 * Hands each line of a child's output to `onLine` (the last one even without a newline); a line
 * longer than `maxLine` characters goes in pieces. A broken pipe ends it with what came.
 */
export async function streamLines(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void, maxLine = MAX_LINE): Promise<void> {
  const dec = new TextDecoder();
  let buf = "";
  try {
    for await (const chunk of stream) {
      buf += dec.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf("\n")) !== -1) {
        onLine(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
      while (buf.length > maxLine) {
        onLine(buf.slice(0, maxLine));
        buf = buf.slice(maxLine);
      }
    }
  } catch {
    // the pipe broke: keep what came
  }
  buf += dec.decode();
  if (buf !== "") onLine(buf);
}

/**
 * Listens on a Unix socket file that only root (its owner) may use, since every request there acts
 * on the host. A stale file is replaced; a live one (another `owner` answers) is an error.
 */
export async function listenControlSocket(path: string, owner: string, onConnection: (sock: Socket) => void): Promise<Server> {
  mkdirSync(dirname(path), { recursive: true });
  if (existsSync(path)) {
    if (await answers(path)) throw new Error(`${path}: another ${owner} is serving this socket`);
    rmSync(path, { force: true });
  }
  const server = createServer(onConnection);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => resolve());
  });
  chmodSync(path, 0o600);
  return server;
}

/** Whether a server accepts on `path`; a hung one counts as gone after a second. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection(path);
    const done = (live: boolean) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(live);
    };
    const timer = setTimeout(() => done(false), 1000);
    sock.once("connect", () => done(true));
    sock.once("error", () => done(false));
  });
}

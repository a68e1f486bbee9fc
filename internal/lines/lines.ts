// Newline-delimited messages over a stream socket: the framing of every control socket coreos
// serves (the update engine's, the supervisor's).
import type { Socket } from "node:net";

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

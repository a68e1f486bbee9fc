// A D-Bus connection over a Unix socket: SASL EXTERNAL with our uid, Hello, method calls and
// their replies, signals, and objects we export. Enough for com.coreos.update1 and login1; not a
// general binding (no fd passing, no TCP transports, no introspection-driven proxies).
import { readFileSync } from "node:fs";
import { createConnection, type Socket } from "node:net";
import type { Value } from "./marshal.ts";
import { decodeMessage, encodeMessage, Flag, messageLength, MessageType, type Message } from "./message.ts";

export const SYSTEM_BUS_ENV = "DBUS_SYSTEM_BUS_ADDRESS";
export const DEFAULT_SYSTEM_BUS = "unix:path=/run/dbus/system_bus_socket";

const DBUS = { destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus" };

/** An error reply, or a failure we report the way a peer would. */
export class DBusError extends Error {
  constructor(
    readonly errorName: string,
    readonly text: string,
  ) {
    super(`${errorName}: ${text}`);
  }
}

export interface CallOptions {
  destination: string;
  path: string;
  interface: string;
  member: string;
  signature?: string;
  body?: Value[];
  /** ms; the reference implementation's default is 25s. */
  timeoutMs?: number;
}

export interface SignalOptions {
  path: string;
  interface: string;
  member: string;
  signature?: string;
  body?: Value[];
}

export interface MethodSpec {
  in: string;
  out: string;
  /** Returns the out values; a thrown DBusError becomes that error reply, anything else org.freedesktop.DBus.Error.Failed. */
  handler(...args: Value[]): Value[] | Promise<Value[]>;
}

export interface InterfaceSpec {
  name: string;
  methods: Record<string, MethodSpec>;
  /** Signal name → signature, for introspection. */
  signals: Record<string, string>;
}

export type SignalHandler = (m: Message) => void;

/** Socket paths of a D-Bus address list ("unix:path=…;unix:abstract=…"); other transports are skipped. */
export function socketPaths(address: string): string[] {
  const out: string[] = [];
  for (const entry of address.split(";")) {
    const colon = entry.indexOf(":");
    if (colon < 0 || entry.slice(0, colon) !== "unix") continue;
    const kv = new Map<string, string>();
    for (const pair of entry.slice(colon + 1).split(",")) {
      const eq = pair.indexOf("=");
      if (eq > 0) kv.set(pair.slice(0, eq), decodeURIComponent(pair.slice(eq + 1)));
    }
    if (kv.has("path")) out.push(kv.get("path")!);
    else if (kv.has("abstract")) out.push(`\0${kv.get("abstract")}`);
  }
  return out;
}

export function systemBusAddress(env: Record<string, string | undefined> = process.env): string {
  return env[SYSTEM_BUS_ENV] || DEFAULT_SYSTEM_BUS;
}

/** Errors that mean "there is no bus here", a normal outcome on hosts without D-Bus. */
const ABSENT = new Set(["ENOENT", "ECONNREFUSED", "ENOTDIR", "EACCES"]);

/** The system bus, or null when none is running. Authentication or protocol failures throw. */
export function systemBus(env: Record<string, string | undefined> = process.env): Promise<Bus | null> {
  return Bus.connect(systemBusAddress(env));
}

export class Bus {
  uniqueName = "";
  private serial = 0;
  private buf = new Uint8Array(0);
  private readonly pending = new Map<number, { resolve(m: Message): void; reject(e: Error): void; timer: ReturnType<typeof setTimeout> }>();
  private readonly signalHandlers = new Set<SignalHandler>();
  private readonly objects = new Map<string, Map<string, InterfaceSpec>>();
  private closed = false;
  private readonly closeHandlers = new Set<(e: Error | null) => void>();

  private constructor(private readonly sock: Socket) {}

  /** Connects to the first address that answers; null when none does. */
  static async connect(address: string): Promise<Bus | null> {
    for (const path of socketPaths(address)) {
      let sock: Socket;
      try {
        sock = await open(path);
      } catch (e) {
        if (ABSENT.has((e as NodeJS.ErrnoException).code ?? "")) continue;
        throw e;
      }
      const bus = new Bus(sock);
      try {
        await bus.authenticate();
        const [name] = (await bus.call({ ...DBUS, member: "Hello" })) as [string];
        bus.uniqueName = name;
      } catch (e) {
        bus.close();
        throw e;
      }
      return bus;
    }
    return null;
  }

  /** SASL EXTERNAL: the daemon checks our credentials against the uid we claim. */
  private authenticate(): Promise<void> {
    const uid = process.getuid?.() ?? 0;
    const hex = Buffer.from(String(uid), "ascii").toString("hex");
    return new Promise((resolve, reject) => {
      let text = "";
      const onData = (chunk: Buffer) => {
        text += chunk.toString("latin1");
        const nl = text.indexOf("\r\n");
        if (nl < 0) {
          if (text.length > 512) fail(new Error("D-Bus authentication: no line from the server"));
          return;
        }
        const line = text.slice(0, nl);
        cleanup();
        if (!line.startsWith("OK ")) return reject(new Error(`D-Bus authentication rejected: ${line}`));
        this.sock.write("BEGIN\r\n");
        this.listen(Buffer.from(text.slice(nl + 2), "latin1"));
        resolve();
      };
      const fail = (e: Error) => {
        cleanup();
        this.sock.destroy();
        reject(e);
      };
      const onClose = () => fail(new Error("D-Bus authentication: connection closed"));
      // A socket that accepts but never speaks must not hang the caller.
      const timer = setTimeout(() => fail(new Error("D-Bus authentication: no answer within 10s")), 10_000);
      const cleanup = () => {
        clearTimeout(timer);
        this.sock.off("data", onData);
        this.sock.off("error", fail);
        this.sock.off("close", onClose);
      };
      this.sock.on("data", onData);
      this.sock.on("error", fail);
      this.sock.on("close", onClose);
      this.sock.write(`\0AUTH EXTERNAL ${hex}\r\n`);
    });
  }

  private listen(rest: Uint8Array): void {
    this.sock.on("data", (chunk: Buffer) => this.receive(chunk));
    this.sock.on("error", (e) => this.shutdown(e));
    this.sock.on("close", () => this.shutdown(null));
    if (rest.length > 0) this.receive(rest);
  }

  private receive(chunk: Uint8Array): void {
    let buf = chunk;
    if (this.buf.length > 0) {
      buf = new Uint8Array(this.buf.length + chunk.length);
      buf.set(this.buf);
      buf.set(chunk, this.buf.length);
    }
    let off = 0;
    try {
      for (;;) {
        const len = messageLength(buf.subarray(off));
        if (len === null) break;
        const m = decodeMessage(buf.subarray(off, off + len));
        off += len;
        this.dispatch(m);
      }
    } catch (e) {
      // The stream cannot be resynchronised after a bad message.
      this.shutdown(e as Error);
      this.sock.destroy();
      return;
    }
    this.buf = buf.slice(off);
  }

  private dispatch(m: Message): void {
    switch (m.type) {
      case MessageType.MethodReturn:
      case MessageType.Error: {
        const p = m.replySerial === undefined ? undefined : this.pending.get(m.replySerial);
        if (!p) return;
        this.pending.delete(m.replySerial!);
        clearTimeout(p.timer);
        if (m.type === MessageType.Error) p.reject(new DBusError(m.errorName ?? "org.freedesktop.DBus.Error.Failed", typeof m.body[0] === "string" ? m.body[0] : ""));
        else p.resolve(m);
        return;
      }
      case MessageType.Signal:
        for (const h of this.signalHandlers) h(m);
        return;
      case MessageType.MethodCall:
        void this.answer(m);
        return;
    }
  }

  private async answer(m: Message): Promise<void> {
    const reply = (signature: string, body: Value[]) => {
      if (m.flags & Flag.NoReplyExpected) return;
      this.send({ type: MessageType.MethodReturn, flags: Flag.NoReplyExpected, serial: 0, replySerial: m.serial, destination: m.sender, signature, body });
    };
    const error = (name: string, text: string) => {
      if (m.flags & Flag.NoReplyExpected) return;
      this.send({ type: MessageType.Error, flags: Flag.NoReplyExpected, serial: 0, replySerial: m.serial, destination: m.sender, errorName: name, signature: "s", body: [text] });
    };
    const ifaces = this.objects.get(m.path ?? "");
    if (m.interface === "org.freedesktop.DBus.Peer") {
      if (m.member === "Ping") return reply("", []);
      if (m.member === "GetMachineId") {
        try {
          return reply("s", [readFileSync("/etc/machine-id", "utf8").trim()]);
        } catch (e) {
          return error("org.freedesktop.DBus.Error.FileNotFound", (e as Error).message);
        }
      }
    }
    if (m.interface === "org.freedesktop.DBus.Introspectable" && m.member === "Introspect") return reply("s", [introspect(m.path ?? "/", ifaces, this.objects)]);
    if (!ifaces) return error("org.freedesktop.DBus.Error.UnknownObject", `no object at ${m.path}`);
    let spec: MethodSpec | undefined;
    if (m.interface) spec = ifaces.get(m.interface)?.methods[m.member ?? ""];
    else for (const i of ifaces.values()) spec ??= i.methods[m.member ?? ""];
    if (!spec) return error("org.freedesktop.DBus.Error.UnknownMethod", `no method ${m.interface ?? "?"}.${m.member} at ${m.path}`);
    if (m.signature !== spec.in) return error("org.freedesktop.DBus.Error.InvalidArgs", `${m.member} takes (${spec.in}), got (${m.signature})`);
    try {
      reply(spec.out, await spec.handler(...m.body));
    } catch (e) {
      if (e instanceof DBusError) error(e.errorName, e.text);
      else error("org.freedesktop.DBus.Error.Failed", (e as Error).message);
    }
  }

  private send(m: Message): number {
    if (this.closed) throw new DBusError("org.freedesktop.DBus.Error.Disconnected", "connection closed");
    m.serial = ++this.serial;
    this.sock.write(encodeMessage(m));
    return m.serial;
  }

  /** Calls a method; resolves with the reply's values. */
  async call(o: CallOptions): Promise<Value[]> {
    return (await this.callMessage(o)).body;
  }

  /** Calls a method; resolves with the whole reply (its signature tells what the body holds). */
  callMessage(o: CallOptions): Promise<Message> {
    const signature = o.signature ?? "";
    const body = o.body ?? [];
    return new Promise<Message>((resolve, reject) => {
      let serial: number;
      try {
        serial = this.send({ type: MessageType.MethodCall, flags: 0, serial: 0, destination: o.destination, path: o.path, interface: o.interface, member: o.member, signature, body });
      } catch (e) {
        return reject(e);
      }
      const timer = setTimeout(() => {
        this.pending.delete(serial);
        reject(new DBusError("org.freedesktop.DBus.Error.NoReply", `${o.interface}.${o.member}: no reply within ${o.timeoutMs ?? 25000}ms`));
      }, o.timeoutMs ?? 25000);
      this.pending.set(serial, { resolve, reject, timer });
    });
  }

  emit(o: SignalOptions): void {
    this.send({ type: MessageType.Signal, flags: Flag.NoReplyExpected, serial: 0, path: o.path, interface: o.interface, member: o.member, signature: o.signature ?? "", body: o.body ?? [] });
  }

  /** Resolves once everything written so far has reached the kernel (before exit or close). */
  flush(): Promise<void> {
    return new Promise((resolve) => this.sock.write(new Uint8Array(0), () => resolve()));
  }

  addMatch(rule: string): Promise<Value[]> {
    return this.call({ ...DBUS, member: "AddMatch", signature: "s", body: [rule] });
  }

  /** RequestName; returns the daemon's answer (1 = primary owner … 4 = already owner). */
  async requestName(name: string, flags: number): Promise<number> {
    const [r] = await this.call({ ...DBUS, member: "RequestName", signature: "su", body: [name, flags] });
    return r as number;
  }

  exportInterface(path: string, spec: InterfaceSpec): void {
    let ifaces = this.objects.get(path);
    if (!ifaces) this.objects.set(path, (ifaces = new Map()));
    ifaces.set(spec.name, spec);
  }

  onSignal(h: SignalHandler): () => void {
    this.signalHandlers.add(h);
    return () => this.signalHandlers.delete(h);
  }

  /** Called once when the connection ends: null when we closed it, else the cause. */
  onClose(h: (e: Error | null) => void): void {
    if (this.closed) h(null);
    else this.closeHandlers.add(h);
  }

  close(): void {
    this.shutdown(null);
    this.sock.destroy();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private shutdown(e: Error | null): void {
    if (this.closed) return;
    this.closed = true;
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new DBusError("org.freedesktop.DBus.Error.Disconnected", e ? e.message : "connection closed"));
    }
    this.pending.clear();
    for (const h of this.closeHandlers) h(e);
    this.closeHandlers.clear();
  }
}

function open(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(path);
    sock.once("connect", () => {
      sock.off("error", reject);
      resolve(sock);
    });
    sock.once("error", reject);
  });
}

const xmlEscape = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** Introspection XML for busctl and d-feet: our interfaces plus the children on the way to deeper objects. */
function introspect(path: string, ifaces: Map<string, InterfaceSpec> | undefined, all: Map<string, Map<string, InterfaceSpec>>): string {
  const args = (sig: string, dir: string) => {
    const out: string[] = [];
    let depth = 0;
    let cur = "";
    for (const c of sig) {
      cur += c;
      if (c === "(" || c === "{") depth++;
      if (c === ")" || c === "}") depth--;
      if (depth === 0 && c !== "a") {
        out.push(`<arg type="${xmlEscape(cur)}"${dir ? ` direction="${dir}"` : ""}/>`);
        cur = "";
      }
    }
    return out.join("");
  };
  let xml = '<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">\n<node>';
  for (const spec of ifaces?.values() ?? []) {
    xml += `<interface name="${xmlEscape(spec.name)}">`;
    for (const [name, m] of Object.entries(spec.methods)) xml += `<method name="${xmlEscape(name)}">${args(m.in, "in")}${args(m.out, "out")}</method>`;
    for (const [name, sig] of Object.entries(spec.signals)) xml += `<signal name="${xmlEscape(name)}">${args(sig, "")}</signal>`;
    xml += "</interface>";
  }
  const prefix = path === "/" ? "/" : `${path}/`;
  const children = new Set<string>();
  for (const p of all.keys()) if (p.startsWith(prefix) && p !== path) children.add(p.slice(prefix.length).split("/")[0]!);
  for (const c of children) xml += `<node name="${xmlEscape(c)}"/>`;
  return `${xml}</node>\n`;
}

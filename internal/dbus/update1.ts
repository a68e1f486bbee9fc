// com.coreos.update1 on the system bus (update-engine spec §2.5): the update engine serves it,
// locksmithd and update_engine_client read it. Where no system bus runs, both functions return null
// and callers use the control socket of internal/update/status.ts instead.
import { logger } from "../log/log.ts";
import type { Status } from "../update/status.ts";
import { DBusError, systemBus } from "./bus.ts";
import type { Value } from "./marshal.ts";
import type { Message } from "./message.ts";

export const UPDATE1_NAME = "com.coreos.update1";
export const UPDATE1_PATH = "/com/coreos/update1";
export const UPDATE1_INTERFACE = "com.coreos.update1.Manager";
/** (x last_checked_time, d progress, s current_operation, s new_version, x new_size) */
export const STATUS_SIGNATURE = "xdssx";
/** The match locksmithd adds (B3): any sender's StatusUpdate counts, as `locksmithctl send-need-reboot` relies on. */
export const STATUS_MATCH = `type='signal',interface='${UPDATE1_INTERFACE}',member='StatusUpdate'`;

const REQUEST_NAME_DO_NOT_QUEUE = 4;
const PRIMARY_OWNER = 1;
const ALREADY_OWNER = 4;

const log = logger("dbus");

export function statusBody(s: Status): Value[] {
  return [BigInt(Math.trunc(s.last_checked_time)), s.progress, s.current_operation, s.new_version, BigInt(Math.trunc(s.new_size))];
}

/** A StatusUpdate body or GetStatus reply as a Status; null when it is not one (dropped, as locksmith 0.6.2 does). */
export function statusFrom(signature: string, body: Value[]): Status | null {
  if (!signature.startsWith(STATUS_SIGNATURE) || body.length < 5) return null;
  const [t, p, op, ver, size] = body as [bigint, number, string, string, bigint];
  return { last_checked_time: Number(t), progress: p, current_operation: op, new_version: ver, new_size: Number(size) };
}

const xmlAttr = (s: string) => s.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;");

/**
 * The system bus policy the image installs as /usr/share/dbus-1/system.d/com.coreos.update1.conf
 * (§2.5): without it the bus's default policy refuses update_engine the name. `owner` (a user name
 * or a numeric uid) may own the name and call anything; each of `callers` may call only the Manager's three methods, with
 * introspection and Properties denied.
 */
export function update1Policy(owner = "root", callers: string[] = ["core"]): string {
  const to = `send_destination="${UPDATE1_NAME}"`;
  const callerPolicy = (u: string) =>
    `  <policy user="${xmlAttr(u)}">
${["AttemptUpdate", "GetStatus", "ResetStatus"].map((m) => `    <allow ${to} send_interface="${UPDATE1_INTERFACE}" send_member="${m}"/>`).join("\n")}
    <deny ${to} send_interface="org.freedesktop.DBus.Introspectable"/>
    <deny ${to} send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
`;
  return `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <policy user="${xmlAttr(owner)}">
    <allow own="${UPDATE1_NAME}"/>
    <allow ${to}/>
  </policy>
${callers.map(callerPolicy).join("")}</busconfig>
`;
}

export interface Update1Handlers {
  getStatus(): Status;
  attemptUpdate(): Promise<void>;
  resetStatus(): Promise<void>;
}

export interface Update1Server {
  /** Emits StatusUpdate with this status; a lost bus connection is logged, not thrown. */
  emit(status: Status): void;
  close(): Promise<void>;
}

/**
 * Owns com.coreos.update1 and serves the Manager interface. Null when there is no system bus;
 * throws when another process owns the name or the bus refuses us.
 */
export async function serveUpdate1(handlers: Update1Handlers, env: Record<string, string | undefined> = process.env): Promise<Update1Server | null> {
  const bus = await systemBus(env);
  if (bus === null) return null;
  bus.exportInterface(UPDATE1_PATH, {
    name: UPDATE1_INTERFACE,
    methods: {
      GetStatus: { in: "", out: STATUS_SIGNATURE, handler: () => statusBody(handlers.getStatus()) },
      AttemptUpdate: {
        in: "",
        out: "",
        handler: async () => {
          await handlers.attemptUpdate();
          return [];
        },
      },
      ResetStatus: {
        in: "",
        out: "b",
        handler: async () => {
          await handlers.resetStatus();
          return [true];
        },
      },
    },
    signals: { StatusUpdate: STATUS_SIGNATURE },
  });
  let owner: number;
  try {
    owner = await bus.requestName(UPDATE1_NAME, REQUEST_NAME_DO_NOT_QUEUE);
  } catch (e) {
    bus.close();
    throw e;
  }
  if (owner !== PRIMARY_OWNER && owner !== ALREADY_OWNER) {
    bus.close();
    throw new Error(`${UPDATE1_NAME} is already owned by another process on the system bus`);
  }
  let warned = false;
  bus.onClose((e) => {
    if (e) log.warn(`system bus connection lost: ${e.message}`);
  });
  return {
    emit(status) {
      try {
        bus.emit({ path: UPDATE1_PATH, interface: UPDATE1_INTERFACE, member: "StatusUpdate", signature: STATUS_SIGNATURE, body: statusBody(status) });
      } catch (e) {
        if (!warned) log.warn(`StatusUpdate not sent: ${(e as Error).message}`);
        warned = true;
      }
    },
    async close() {
      if (!bus.isClosed) await bus.flush();
      bus.close();
    },
  };
}

export interface SubscribeUpdate1Options {
  /** A StatusUpdate whose body is not (xdssx…). */
  onInvalid?(m: Message): void;
  /** GetStatus failed for another reason than the engine not running yet. */
  onError?(e: Error): void;
  /** The bus connection ended without close() (the daemon stopped). */
  onClose?(e: Error | null): void;
}

/**
 * Every StatusUpdate on the bus, and the engine's status from GetStatus: once at start and again
 * whenever com.coreos.update1 gets an owner (the engine may start after us: coreos/bugs#1011).
 * Null when there is no system bus.
 */
export async function subscribeUpdate1(
  onStatus: (s: Status) => void,
  o: SubscribeUpdate1Options = {},
  env: Record<string, string | undefined> = process.env,
): Promise<{ close(): void } | null> {
  const bus = await systemBus(env);
  if (bus === null) return null;
  let closing = false;
  const poll = async () => {
    try {
      const m = await bus.callMessage({ destination: UPDATE1_NAME, path: UPDATE1_PATH, interface: UPDATE1_INTERFACE, member: "GetStatus" });
      const s = statusFrom(m.signature, m.body);
      if (s) onStatus(s);
      else o.onError?.(new Error(`GetStatus answered (${m.signature}), want (${STATUS_SIGNATURE})`));
    } catch (e) {
      const absent = e instanceof DBusError && /ServiceUnknown|NameHasNoOwner/.test(e.errorName);
      if (!absent && !closing && !bus.isClosed) o.onError?.(e as Error);
    }
  };
  bus.onSignal((m) => {
    if (m.interface === UPDATE1_INTERFACE && m.member === "StatusUpdate") {
      const s = statusFrom(m.signature, m.body);
      if (s) onStatus(s);
      else o.onInvalid?.(m);
    } else if (m.interface === "org.freedesktop.DBus" && m.member === "NameOwnerChanged" && m.body[0] === UPDATE1_NAME && m.body[2] !== "") {
      void poll();
    }
  });
  bus.onClose((e) => {
    if (!closing) o.onClose?.(e);
  });
  try {
    await bus.addMatch(STATUS_MATCH);
    await bus.addMatch(`type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='${UPDATE1_NAME}'`);
  } catch (e) {
    bus.close();
    throw e;
  }
  await poll();
  return {
    close() {
      closing = true;
      bus.close();
    },
  };
}

export interface Update1Client {
  getStatus(): Promise<Status>;
  attemptUpdate(): Promise<void>;
  resetStatus(): Promise<void>;
  close(): void;
}

/**
 * The engine's methods for update_engine_client. Null when there is no system bus; a call while
 * the engine is not running fails with org.freedesktop.DBus.Error.ServiceUnknown (a DBusError).
 */
export async function connectUpdate1(env: Record<string, string | undefined> = process.env): Promise<Update1Client | null> {
  const bus = await systemBus(env);
  if (bus === null) return null;
  const call = (member: string) => bus.callMessage({ destination: UPDATE1_NAME, path: UPDATE1_PATH, interface: UPDATE1_INTERFACE, member });
  return {
    async getStatus() {
      const m = await call("GetStatus");
      const s = statusFrom(m.signature, m.body);
      if (s === null) throw new DBusError("org.freedesktop.DBus.Error.InvalidSignature", "GetStatus answered something that is not (xdssx)");
      return s;
    },
    async attemptUpdate() {
      await call("AttemptUpdate");
    },
    async resetStatus() {
      await call("ResetStatus");
    },
    close: () => bus.close(),
  };
}

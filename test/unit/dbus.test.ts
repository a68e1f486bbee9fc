import { describe, expect, test } from "bun:test";
import { marshal, MarshalError, parseSignature, Reader, typeSignature, unmarshal, type Value } from "../../internal/dbus/marshal.ts";
import { decodeMessage, encodeMessage, messageLength, MessageType } from "../../internal/dbus/message.ts";
import { socketPaths } from "../../internal/dbus/bus.ts";
import { statusBody, statusFrom } from "../../internal/dbus/update1.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const f64 = (x: number) => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setFloat64(0, x, true);
  return hex(b);
};

// Bytes worked out by hand from the specification's alignment rules (padding is relative to the
// start of the body, arrays' lengths exclude the padding before the first element).
const exact: [string, Value[], string][] = [
  ["y", [0x12], "12"],
  ["b", [true], "01000000"],
  ["b", [false], "00000000"],
  ["yn", [1, -2], "0100feff"],
  ["yq", [1, 0xbeef], "0100efbe"],
  ["yi", [1, -1], "01000000ffffffff"],
  ["yu", [1, 0xdeadbeef], "01000000efbeadde"],
  ["yx", [1, -1n], `01${"00".repeat(7)}${"ff".repeat(8)}`],
  ["yt", [1, 0x0102030405060708n], "01000000000000000807060504030201"],
  ["yd", [1, 1.5], `0100000000000000${f64(1.5)}`],
  ["s", ["ab"], "02000000616200"],
  ["s", [""], "0000000000"],
  ["o", ["/a"], "020000002f6100"],
  ["g", ["as"], "02617300"],
  ["ai", [[1, 2]], "080000000100000002000000"],
  ["ax", [[5n]], "08000000000000000500000000000000"],
  ["ax", [[]], "0000000000000000"],
  ["yay", [7, [1, 2, 3]], "0700000003000000010203"],
  ["a{sv}", [[["k", { sig: "u", value: 7 }]]], "10000000" + "00000000" + "010000006b00" + "017500" + "000000" + "07000000"],
  ["v", [{ sig: "(is)", value: [1, "a"] }], "0428697329000000010000000100000061" + "00"],
  ["(yv)", [[5, { sig: "y", value: 9 }]], "0501790009"],
  ["y(y)", [1, [2]], "0100000000000000" + "02"],
];

describe("marshal: exact bytes", () => {
  for (const [sig, values, want] of exact) {
    test(`${sig} ${JSON.stringify(values, (_, v) => (typeof v === "bigint" ? `${v}n` : v))}`, () => {
      expect(hex(marshal(sig, values))).toBe(want);
      expect(unmarshal(sig, Buffer.from(want, "hex"))).toEqual(values);
    });
  }
});

// Every type, nested containers, and values at the edges of their ranges come back unchanged.
const roundTrips: [string, Value[]][] = [
  ["ybnqiuxtdsog", [255, true, -32768, 65535, -2147483648, 4294967295, -(1n << 63n), (1n << 64n) - 1n, -0.25, "ünïcødé", "/com/coreos/update1", "a{sv}(xdssx)"]],
  ["xdssx", [1715600000n, 0.5, "UPDATE_STATUS_IDLE", "0.0.0", 0n]],
  ["aai", [[[1], [], [2, 3]]]],
  ["a(yx)", [[[1, 2n], [3, 4n]]]],
  ["a{s(ii)}", [[["a", [1, 2]], ["b", [3, 4]]]]],
  ["a{ia{sv}}", [[[1, [["x", { sig: "as", value: ["p", "q"] }]]]]]],
  ["av", [[{ sig: "x", value: 1n }, { sig: "y", value: 1 }, { sig: "v", value: { sig: "d", value: 2.5 } }, { sig: "a{sy}", value: [["k", 1]] }]]],
  ["(ya(dv))", [[1, [[1.5, { sig: "t", value: 9n }], [2, { sig: "o", value: "/" }]]]]],
  ["ayaxay", [[1], [], [2]]],
  ["a(ya(ya(yx)))", [[[1, [[2, [[3, 4n]]]]]]]],
  ["ad", [[Number.MAX_VALUE, -0, Infinity]]],
  ["", []],
];

describe("marshal: round trips", () => {
  for (const [sig, values] of roundTrips) {
    test(sig || "(empty)", () => {
      const bytes = marshal(sig, values);
      expect(unmarshal(sig, bytes)).toEqual(values);
    });
  }

  test("alignment is relative to the message, not the value", () => {
    // The same x written 4 bytes into a message needs 4 bytes of padding, not 0.
    const bytes = marshal("x", [1n], 4);
    expect(hex(bytes)).toBe("000000000100000000000000");
    const r = new Reader(bytes, true, 4);
    expect(r.readAll("x")).toEqual([1n]);
  });

  test("numbers are accepted for 64-bit integers", () => {
    expect(unmarshal("xt", marshal("xt", [-5, 5]))).toEqual([-5n, 5n]);
  });

  test("big-endian bodies are read", () => {
    const be = Uint8Array.from([0, 0, 0, 2, 0x61, 0x62, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]);
    expect(unmarshal("sx", be, false)).toEqual(["ab", 9n]);
  });
});

describe("signatures", () => {
  test.each(["y", "as", "a{sv}", "(ia(sv))", "aa{s(x)}", "v"])("%s parses and prints back", (sig) => {
    expect(parseSignature(sig).map(typeSignature).join("")).toBe(sig);
  });
  test.each([
    ["a", /ends inside/],
    ["(", /unclosed|ends inside/],
    ["()", /empty struct/],
    ["a{vs}", /basic type/],
    ["a{sss}", /two types/],
    ["{ss}", /unexpected/],
    ["z", /unexpected/],
    ["a".repeat(40) + "y", /deeper/],
    ["y".repeat(256), /longer than 255/],
  ])("%s is rejected", (sig, msg) => {
    expect(() => parseSignature(sig)).toThrow(msg);
  });
});

describe("bad values and bytes", () => {
  test.each<[string, Value[], RegExp]>([
    ["y", [256], /0\.\.255/],
    ["n", [40000], /-32768\.\.32767/],
    ["i", [1.5], /integer/],
    ["u", [-1], /0\.\.4294967295/],
    ["x", [1n << 63n], /integer in/],
    ["t", [-1n], /integer in/],
    ["b", [1], /boolean/],
    ["s", [5], /string/],
    ["s", ["a\0b"], /NUL/],
    ["o", ["com/x"], /object path/],
    ["o", ["/a/"], /object path/],
    ["g", ["a"], /ends inside/],
    ["ai", ["x"], /an array/],
    ["(ii)", [[1]], /2 fields/],
    ["v", [{ sig: "ii", value: 1 }], /exactly one type/],
    ["v", [3], /variant/],
    ["ii", [1], /has 2 values, got 1/],
  ])("%s %p is refused", (sig, values, msg) => {
    expect(() => marshal(sig, values)).toThrow(msg);
  });

  test.each<[string, string, RegExp]>([
    ["b", "02000000", /neither 0 nor 1/],
    ["yu", "0101000005000000", /non-zero padding/],
    ["s", "0500000061", /truncated/],
    ["s", "020000006162ff", /NUL-terminated/],
    ["s", "02000000ff fe00".replace(" ", ""), /UTF-8/],
    ["ai", "0800000001000000", /truncated/],
    ["ay", "0200000001020304", /left after/],
    ["v", "0269690000000000", /exactly one type/],
  ])("reading %s from %s fails", (sig, bytes, msg) => {
    expect(() => unmarshal(sig, Buffer.from(bytes, "hex"))).toThrow(msg);
    expect(() => unmarshal(sig, Buffer.from(bytes, "hex"))).toThrow(MarshalError);
  });
});

describe("messages", () => {
  test("a method call survives encode/decode with every header field", () => {
    const m = {
      type: MessageType.MethodCall,
      flags: 0,
      serial: 7,
      path: "/com/coreos/update1",
      interface: "com.coreos.update1.Manager",
      member: "GetStatus",
      destination: "com.coreos.update1",
      sender: ":1.5",
      signature: "xdssx",
      body: [1n, 0.5, "a", "b", 2n],
    };
    const bytes = encodeMessage(m);
    expect(bytes[0]).toBe(0x6c);
    expect(messageLength(bytes)).toBe(bytes.length);
    expect(messageLength(bytes.subarray(0, bytes.length - 1))).toBeNull();
    expect(messageLength(bytes.subarray(0, 10))).toBeNull();
    expect(decodeMessage(bytes)).toEqual(m);
  });

  test("an error reply keeps its name and reply serial; the body starts 8-aligned", () => {
    const m = { type: MessageType.Error, flags: 1, serial: 9, errorName: "org.x.Error.Nope", replySerial: 3, destination: ":1.1", signature: "s", body: ["why"] };
    const bytes = encodeMessage(m);
    const fieldsLen = new DataView(bytes.buffer).getUint32(12, true);
    const bodyStart = Math.ceil((16 + fieldsLen) / 8) * 8;
    expect(bytes.length - bodyStart).toBe(new DataView(bytes.buffer).getUint32(4, true));
    expect(decodeMessage(bytes)).toEqual(m);
  });

  test("a bad endianness byte or serial 0 is refused", () => {
    const bytes = encodeMessage({ type: MessageType.Signal, flags: 1, serial: 1, path: "/", interface: "a.b", member: "C", signature: "", body: [] });
    const bad = bytes.slice();
    bad[0] = 0x78;
    expect(() => messageLength(bad)).toThrow(/endianness/);
    const zero = bytes.slice();
    new DataView(zero.buffer).setUint32(8, 0, true);
    expect(() => decodeMessage(zero)).toThrow(/serial 0/);
  });
});

describe("addresses", () => {
  test.each<[string, string[]]>([
    ["unix:path=/run/dbus/system_bus_socket", ["/run/dbus/system_bus_socket"]],
    ["unix:path=/tmp/a%20b,guid=abc", ["/tmp/a b"]],
    ["tcp:host=x,port=1;unix:abstract=/tmp/dbus-x", ["\0/tmp/dbus-x"]],
    ["unix:path=/a;unix:path=/b", ["/a", "/b"]],
    ["nonsense", []],
  ])("%s", (address, want) => {
    expect(socketPaths(address)).toEqual(want);
  });
});

describe("update1 status body", () => {
  test("a status becomes xdssx and back", () => {
    const s = { last_checked_time: 1715600000, progress: 0.25, current_operation: "UPDATE_STATUS_DOWNLOADING", new_version: "1.2.3", new_size: 123456789 };
    const bytes = marshal("xdssx", statusBody(s));
    expect(statusFrom("xdssx", unmarshal("xdssx", bytes))).toEqual(s);
  });
  test.each<[string, Value[]]>([
    ["xdss", [0n, 0, "a", "b"]],
    ["idssx", [0, 0, "a", "b", 0n]],
    ["s", ["UPDATE_STATUS_UPDATED_NEED_REBOOT"]],
  ])("a body of %s is not a status", (sig, body) => {
    expect(statusFrom(sig, body)).toBeNull();
  });
});

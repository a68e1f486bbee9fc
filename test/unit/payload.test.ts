// CrAU payloads: build -> verify -> apply round trips, the format cross-checked by an independent
// decoder (python3 from spec §3, with its own bz2 and openssl for the signature), and every
// verification failure with the check and update_engine code it must carry.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash, generateKeyPairSync } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  Applier,
  applyPayloadFile,
  buildPayload,
  HOLE,
  inspectPayload,
  OpType,
  PayloadError,
  type PayloadCheck,
  verifyPayload,
  type BuildResult,
} from "../../internal/payload/index.ts";
import {
  decodeExtent,
  decodeManifest,
  decodeOperation,
  encodeExtent,
  encodeManifest,
  encodeOperation,
  type DeltaArchiveManifest,
} from "../../internal/payload/proto.ts";
import { bzip2 } from "../../internal/payload/bzip2.ts";
import { cleanup, tempDir } from "../helpers/procs.ts";

const MiB = 1 << 20;
let dir: string;
let priv: string;
let pub: string;
let otherPub: string;
let image: Uint8Array;
let kernel: Uint8Array;
let built: BuildResult;
let payloadPath: string;
let payload: Uint8Array;

/** Deterministic pseudo-random bytes (xorshift), so failures reproduce. */
function noise(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

function text(n: number): Uint8Array {
  let s = "";
  for (let i = 0; s.length < n; i++) s += `/usr/lib64/libexample.so.${i % 97} owner=root mode=0644 line ${i}\n`;
  return new TextEncoder().encode(s.slice(0, n));
}

/** random | zeros | text | random tail that is not a whole block: REPLACE and REPLACE_BZ both appear. */
function makeImage(): Uint8Array {
  const parts = [noise(MiB + 12345, 7), new Uint8Array(MiB), text(2 * MiB), noise(MiB / 2 + 777, 9)];
  const img = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    img.set(p, o);
    o += p.length;
  }
  return img;
}

async function expectCheck(fn: () => unknown, check: PayloadCheck, code: number): Promise<PayloadError> {
  let err: unknown;
  try {
    await fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(PayloadError);
  expect((err as PayloadError).check).toBe(check);
  expect((err as PayloadError).code).toBe(code);
  return err as PayloadError;
}

function variant(name: string, mutate: (b: Uint8Array) => Uint8Array): string {
  const p = join(dir, name);
  writeFileSync(p, mutate(payload.slice()));
  return p;
}

beforeAll(async () => {
  dir = tempDir("coreos-payload-");
  const k = generateKeyPairSync("rsa", { modulusLength: 2048 });
  priv = k.privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  pub = k.publicKey.export({ type: "spki", format: "pem" }).toString();
  otherPub = generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey.export({ type: "spki", format: "pem" }).toString();
  writeFileSync(join(dir, "pub.pem"), pub);
  image = makeImage();
  kernel = new Uint8Array([...noise(300_000, 3), ...text(200_000)]);
  writeFileSync(join(dir, "usr.img"), image);
  writeFileSync(join(dir, "vmlinuz"), kernel);
  payloadPath = join(dir, "payload.bin");
  built = await buildPayload({ imagePath: join(dir, "usr.img"), privateKeyPem: priv, kernelPath: join(dir, "vmlinuz"), outPath: payloadPath });
  payload = new Uint8Array(readFileSync(payloadPath));
});

afterAll(() => cleanup(dir));

describe("build", () => {
  test("layout follows §3: header, 1 MiB operations, dummy signature op, version-2 signature", async () => {
    expect(new TextDecoder().decode(payload.subarray(0, 4))).toBe("CrAU");
    const view = new DataView(payload.buffer);
    expect(view.getBigUint64(4)).toBe(1n);
    const manifestSize = Number(view.getBigUint64(12));
    const m = decodeManifest(payload.subarray(20, 20 + manifestSize));
    expect(m.blockSize).toBe(4096);
    expect(m.newPartitionInfo?.size).toBe(image.length);
    expect(Buffer.from(m.newPartitionInfo!.hash!)).toEqual(createHash("sha256").update(image).digest());
    expect(m.partitionOperations.length).toBe(Math.ceil(image.length / MiB));
    m.partitionOperations.forEach((op, i) => {
      expect(op.dstExtents).toEqual([{ startBlock: i * 256, numBlocks: Math.ceil(Math.min(MiB, image.length - i * MiB) / 4096) }]);
      expect(op.dataSha256Hash?.length).toBe(32);
    });
    const types = m.partitionOperations.map((o) => o.type);
    expect(types).toContain(OpType.REPLACE);
    expect(types).toContain(OpType.REPLACE_BZ);
    expect(built.replace + built.replaceBz).toBe(types.length + m.procedures[0]!.operations.length);
    // REPLACE_BZ exactly where bzip2 makes the chunk smaller: random stays REPLACE, zeros and text compress.
    m.partitionOperations.forEach((op, i) => {
      const chunk = image.subarray(i * MiB, (i + 1) * MiB);
      if (op.type === OpType.REPLACE_BZ) expect(op.dataLength!).toBeLessThan(chunk.length);
      else expect(bzip2(chunk).length).toBeGreaterThanOrEqual(chunk.length);
    });
    expect(types.slice(0, 4)).toEqual([OpType.REPLACE, OpType.REPLACE_BZ, OpType.REPLACE_BZ, OpType.REPLACE_BZ]);

    expect(m.noopOperations).toHaveLength(1);
    const dummy = m.noopOperations[0]!;
    expect(dummy.type).toBe(OpType.REPLACE);
    expect(dummy.dataOffset).toBe(m.signaturesOffset);
    expect(dummy.dataLength).toBe(m.signaturesSize);
    expect(dummy.dstExtents).toEqual([{ startBlock: HOLE, numBlocks: Math.ceil(m.signaturesSize! / 4096) }]);
    expect(20 + manifestSize + m.signaturesOffset! + m.signaturesSize!).toBe(payload.length);
    expect(m.procedures).toHaveLength(1);
    expect(m.procedures[0]!.newInfo?.size).toBe(kernel.length);

    const info = inspectPayload(payloadPath);
    expect(info.signatures?.signatures.map((s) => [s.version, s.data?.length])).toEqual([[2, 256]]);
    expect(built.size).toBe(payload.length);
    expect(Buffer.from(built.sha256)).toEqual(createHash("sha256").update(payload).digest());
  });

  test("an independent decoder (python3, spec §3) rebuilds the image and kernel; openssl verifies the signature", async () => {
    const py = String.raw`
import sys, struct, hashlib, bz2
data = open(sys.argv[1], 'rb').read()
assert data[:4] == b'CrAU'
ver, msize = struct.unpack('>QQ', data[4:20])
man = data[20:20+msize]; base = 20 + msize
def varint(b, i):
    r = s = 0
    while True:
        c = b[i]; i += 1; r |= (c & 0x7f) << s; s += 7
        if not c & 0x80: return r, i
def fields(b):
    i = 0; out = []
    while i < len(b):
        k, i = varint(b, i); f, w = k >> 3, k & 7
        if w == 0: v, i = varint(b, i)
        elif w == 2:
            n, i = varint(b, i); v = b[i:i+n]; i += n
        else: raise Exception('wire %d' % w)
        out.append((f, v))
    return out
def get(fs, n): return [v for f, v in fs if f == n]
def apply(ops, size, bs):
    out = bytearray(size + bs * 300)
    for o in ops:
        of = fields(o); typ = get(of, 1)[0]; off = get(of, 2)[0]; ln = get(of, 3)[0]
        blob = data[base+off:base+off+ln]
        assert hashlib.sha256(blob).digest() == get(of, 8)[0], 'op hash'
        if typ == 1: blob = bz2.decompress(blob)
        else: assert typ == 0
        (ext,) = get(of, 6); ef = fields(ext); start = get(ef, 1)[0]; num = get(ef, 2)[0]
        assert len(blob) <= num * bs
        out[start*bs:start*bs+len(blob)] = blob
    return bytes(out[:size])
mf = fields(man)
bs = get(mf, 3)[0]; sig_off = get(mf, 4)[0]; sig_size = get(mf, 5)[0]
info = fields(get(mf, 9)[0]); size = get(info, 1)[0]; h = get(info, 2)[0]
img = apply(get(mf, 1), size, bs)
assert hashlib.sha256(img).digest() == h, 'partition hash'
open(sys.argv[2], 'wb').write(img)
(proc,) = get(mf, 10); pf = fields(proc)
assert get(pf, 1) == [0]
kinfo = fields(get(pf, 4)[0])
kern = apply(get(pf, 2), get(kinfo, 1)[0], bs)
assert hashlib.sha256(kern).digest() == get(kinfo, 2)[0], 'kernel hash'
open(sys.argv[3], 'wb').write(kern)
(dummy,) = get(mf, 2); df = fields(dummy)
assert get(df, 1)[0] == 0 and get(df, 2)[0] == sig_off and get(df, 3)[0] == sig_size
dext = fields(get(df, 6)[0]); assert get(dext, 1)[0] == 2**64 - 1
assert base + sig_off + sig_size == len(data)
sigs = fields(data[base+sig_off:])
(sig,) = get(sigs, 1); sf = fields(sig)
assert get(sf, 1) == [2]
open(sys.argv[4], 'wb').write(get(sf, 2)[0])
open(sys.argv[5], 'wb').write(data[:base+sig_off])
print('ok', len(get(mf, 1)))
`;
    writeFileSync(join(dir, "decode.py"), py);
    const [img, kern, sig, signed] = ["py.img", "py.kernel", "py.sig", "py.signed"].map((f) => join(dir, f));
    const r = Bun.spawnSync(["python3", join(dir, "decode.py"), payloadPath, img!, kern!, sig!, signed!]);
    expect(r.stderr.toString()).toBe("");
    expect(r.stdout.toString().trim()).toBe(`ok ${Math.ceil(image.length / MiB)}`);
    expect(Buffer.from(readFileSync(img!))).toEqual(Buffer.from(image));
    expect(Buffer.from(readFileSync(kern!))).toEqual(Buffer.from(kernel));
    const v = Bun.spawnSync(["openssl", "dgst", "-sha256", "-verify", join(dir, "pub.pem"), "-signature", sig!, signed!]);
    expect(v.stdout.toString().trim()).toBe("Verified OK");
  });

  test("the same inputs give the same payload bytes", async () => {
    const again = join(dir, "again.bin");
    const r = await buildPayload({ imagePath: join(dir, "usr.img"), privateKeyPem: priv, kernelPath: join(dir, "vmlinuz"), outPath: again });
    expect(Buffer.from(r.sha256)).toEqual(Buffer.from(built.sha256));
  });

  test("a key that is not RSA-2048 is refused", async () => {
    const small = generateKeyPairSync("rsa", { modulusLength: 1024 }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    await expect(buildPayload({ imagePath: join(dir, "usr.img"), privateKeyPem: small, outPath: join(dir, "x.bin") })).rejects.toThrow("RSA-2048");
  });
});

describe("apply", () => {
  test("onto a partition inside a disk image: partition written, bytes around it untouched, kernel written", async () => {
    const disk = join(dir, "disk.img");
    const offset = 3 * MiB;
    const length = 8 * MiB;
    const before = noise(offset + length + MiB, 11);
    writeFileSync(disk, before);
    const r = await applyPayloadFile(payloadPath, { path: disk, offset, length }, { publicKeyPem: pub, kernelPath: join(dir, "vmlinuz-b") });
    expect(r.signatureChecked).toBe(true);
    expect(Buffer.from(r.partitionHash)).toEqual(createHash("sha256").update(image).digest());
    const after = new Uint8Array(readFileSync(disk));
    expect(after.length).toBe(before.length);
    expect(Buffer.from(after.subarray(0, offset))).toEqual(Buffer.from(before.subarray(0, offset)));
    expect(Buffer.from(after.subarray(offset, offset + image.length))).toEqual(Buffer.from(image));
    // the last block is zero-padded, the rest of the partition and the disk beyond are untouched
    const padEnd = offset + Math.ceil(image.length / 4096) * 4096;
    expect(after.subarray(offset + image.length, padEnd).every((b) => b === 0)).toBe(true);
    expect(Buffer.from(after.subarray(padEnd))).toEqual(Buffer.from(before.subarray(padEnd)));
    expect(Buffer.from(readFileSync(join(dir, "vmlinuz-b")))).toEqual(Buffer.from(kernel));
  });

  test("any split of the stream into chunks gives the same result", async () => {
    for (const seed of [1, 2, 3]) {
      const target = join(dir, `chunks-${seed}.img`);
      // seed 3 runs the operations on the calling thread instead of workers
      const a = new Applier({ target: { path: target }, threads: seed === 3 ? 0 : undefined });
      let x = seed;
      for (let pos = 0; pos < payload.length; ) {
        x = (x * 1103515245 + 12345) & 0x7fffffff;
        const n = 1 + (x % (seed === 1 ? 17 : 300_000));
        a.push(payload.slice(pos, pos + n));
        await a.drain();
        pos += n;
      }
      const r = await a.finish();
      await a.close();
      expect(Buffer.from(r.partitionHash)).toEqual(createHash("sha256").update(image).digest());
    }
  });

  test("a partition smaller than the new image is refused before anything is written", async () => {
    const disk = join(dir, "small.img");
    writeFileSync(disk, new Uint8Array(MiB));
    await expectCheck(() => applyPayloadFile(payloadPath, { path: disk, length: MiB }), "partition-info", 13);
    expect(readFileSync(disk).every((b) => b === 0)).toBe(true);
  });

  test("a partition that does not come out as the manifest says is caught by the read-back hash", async () => {
    // Swap where operations 0 and 1 write (unsigned: the manifest changes). Every operation is
    // intact, but the partition is not the image: only reading it back can tell.
    const ms = Number(new DataView(payload.buffer).getBigUint64(12));
    const m = decodeManifest(payload.subarray(20, 20 + ms));
    const [a, b] = [m.partitionOperations[0]!, m.partitionOperations[1]!];
    [a.dstExtents, b.dstExtents] = [b.dstExtents, a.dstExtents];
    const mb = encodeManifest(m);
    const h = payload.slice(0, 20);
    new DataView(h.buffer).setBigUint64(12, BigInt(mb.length));
    const p = join(dir, "swapped.bin");
    writeFileSync(p, Buffer.concat([h, mb, payload.subarray(20 + ms)]));
    const e = await expectCheck(() => applyPayloadFile(p, { path: join(dir, "swapped.img") }), "partition-hash", 15);
    expect(e.message).toContain("written partition SHA-256");
  });
});

describe("verify failures carry the check and the update_engine code", () => {
  const manifestSize = () => Number(new DataView(payload.buffer).getBigUint64(12));

  test("good payload verifies", async () => {
    const r = await verifyPayload(payloadPath, { publicKeyPem: pub, size: payload.length, sha256: built.sha256 });
    expect(r.signatureChecked).toBe(true);
    expect(r.manifest.partitionOperations.length).toBeGreaterThan(3);
  });

  test("wrong key", async () => {
    const e = await expectCheck(() => verifyPayload(payloadPath, { publicKeyPem: otherPub }), "signature", 18);
    expect(e.message).toContain("does not verify");
  });

  test("flipped byte in the signature", async () => {
    const p = variant("flip-sig.bin", (b) => ((b[b.length - 10]! ^= 1), b));
    await expectCheck(() => verifyPayload(p, { publicKeyPem: pub }), "signature", 18);
  });

  test("flipped byte in an operation's data", async () => {
    const p = variant("flip-op.bin", (b) => ((b[20 + manifestSize() + 5000]! ^= 0x40), b));
    const e = await expectCheck(() => verifyPayload(p, { publicKeyPem: pub }), "operation-hash", 29);
    expect(e.message).toContain("operation 0");
  });

  test("flipped byte in the manifest's partition hash: signature fails (the manifest is signed)", async () => {
    const m = decodeManifest(payload.subarray(20, 20 + manifestSize()));
    const at = Buffer.from(payload.subarray(0, 20 + manifestSize())).indexOf(Buffer.from(m.newPartitionInfo!.hash!));
    const p = variant("flip-manifest.bin", (b) => ((b[at + 3]! ^= 1), b));
    await expectCheck(() => verifyPayload(p, { publicKeyPem: pub }), "signature", 18);
    // without the key the tampered partition hash is caught by the read-back instead
    await expectCheck(() => applyPayloadFile(p, { path: join(dir, "tampered.img") }), "partition-hash", 15);
  });

  test("bad magic", async () => {
    const p = variant("magic.bin", (b) => ((b[0] = 0x42), b));
    const e = await expectCheck(() => verifyPayload(p), "magic", 21);
    expect(e.message).toContain("CrAU");
  });

  test("absurd manifest size", async () => {
    const p = variant("msize.bin", (b) => (new DataView(b.buffer).setBigUint64(12, 1n << 40n), b));
    await expectCheck(() => verifyPayload(p), "metadata-size", 32);
  });

  test("truncated payload", async () => {
    const p = variant("short.bin", (b) => b.subarray(0, b.length - 1000));
    const e = await expectCheck(() => verifyPayload(p, { publicKeyPem: pub }), "size", 11);
    expect(e.message).toContain("truncated");
  });

  test("extra bytes after the signatures", async () => {
    const p = variant("long.bin", (b) => Buffer.concat([b, new Uint8Array([1, 2, 3])]));
    await expectCheck(() => verifyPayload(p), "size", 11);
  });

  test("wrong expected size", async () => {
    await expectCheck(() => verifyPayload(payloadPath, { size: payload.length + 1 }), "size", 11);
  });

  test("wrong expected SHA-256", async () => {
    const e = await expectCheck(() => verifyPayload(payloadPath, { sha256: new Uint8Array(32) }), "payload-hash", 10);
    expect(e.message).toContain("base64");
  });

  test("unsigned payload when a key is required", async () => {
    const m = decodeManifest(payload.subarray(20, 20 + manifestSize()));
    const unsigned: DeltaArchiveManifest = { ...m, signaturesOffset: undefined, signaturesSize: undefined, noopOperations: [] };
    const mb = encodeManifest(unsigned);
    const blobs = payload.subarray(20 + manifestSize(), 20 + manifestSize() + m.signaturesOffset!);
    const h = new Uint8Array(20);
    h.set(payload.subarray(0, 12));
    new DataView(h.buffer).setBigUint64(12, BigInt(mb.length));
    const p = join(dir, "unsigned.bin");
    writeFileSync(p, Buffer.concat([h, mb, blobs]));
    await expectCheck(() => verifyPayload(p, { publicKeyPem: pub }), "signature-missing", 12);
    expect((await verifyPayload(p)).signatureChecked).toBe(false);
  });
});

describe("protobuf", () => {
  test("extents round-trip, the sparse hole as 2^64-1 (ten-byte varint)", async () => {
    const hole = encodeExtent({ startBlock: HOLE, numBlocks: 1 });
    expect(Buffer.from(hole).toString("hex")).toBe("08ffffffffffffffffff01" + "1001");
    expect(decodeExtent(hole)).toEqual({ startBlock: HOLE, numBlocks: 1 });
    expect(decodeExtent(encodeExtent({ startBlock: 2 ** 40, numBlocks: 256 }))).toEqual({ startBlock: 2 ** 40, numBlocks: 256 });
  });

  test("an operation's fields carry §3.2's numbers; REPLACE (0) is still written; unknown fields are skipped", async () => {
    const op = { type: OpType.REPLACE, dataOffset: 5, dataLength: 7, srcExtents: [], dstExtents: [{ startBlock: 1, numBlocks: 2 }], dataSha256Hash: new Uint8Array([9]) };
    const b = encodeOperation(op);
    // type=1 varint 0, data_offset=2, data_length=3, dst_extents=6 (len 4), data_sha256_hash=8
    expect(Buffer.from(b).toString("hex")).toBe("0800" + "1005" + "1807" + "3204" + "08011002" + "420109");
    const withUnknown = new Uint8Array([...b, 0x78, 0x05, 0x82, 0x01, 0x02, 0xaa, 0xbb]); // field 15 varint, field 16 bytes
    expect(decodeOperation(withUnknown)).toEqual({ ...op, dataSha256Hash: new Uint8Array([9]) });
  });

  test("garbage is a readable error, not a crash", async () => {
    expect(() => decodeManifest(new Uint8Array([0x0a, 0x7f, 1, 2]))).toThrow("runs past the end");
    expect(() => decodeOperation(new Uint8Array([0x10, 0x01]))).toThrow("type missing");
  });
});

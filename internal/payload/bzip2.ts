// bzip2 through the system's libbz2 (libbz2-1.0, a dependency of dpkg, so on every Debian machine).
// Why not an npm package: the pure-JS ones (compressjs, seek-bzip, unbzip2-stream) decode at a
// tenth of libbz2's speed and only compressjs can compress; applying a payload must keep up
// with the disk, so the real library is called through bun:ffi.
import { dlopen, FFIType, ptr } from "bun:ffi";

const LIB_NAMES = ["libbz2.so.1.0", "libbz2.so.1", "libbz2.so"];

const BZ_OK = 0;
const BZ_OUTBUFF_FULL = -8;
const BZ_MESSAGES: Record<number, string> = {
  [-2]: "bad parameter",
  [-3]: "out of memory",
  [-4]: "data integrity error (corrupt bzip2 data)",
  [-5]: "not bzip2 data",
  [-7]: "unexpected end of bzip2 data",
  [BZ_OUTBUFF_FULL]: "decompressed data larger than expected",
};

const symbols = {
  BZ2_bzBuffToBuffCompress: {
    args: [FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.u32, FFIType.i32, FFIType.i32, FFIType.i32],
    returns: FFIType.i32,
  },
  BZ2_bzBuffToBuffDecompress: {
    args: [FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.u32, FFIType.i32, FFIType.i32],
    returns: FFIType.i32,
  },
} as const;

type Lib = ReturnType<typeof dlopen<typeof symbols>>["symbols"];
let lib: Lib | undefined;

function load(): Lib {
  if (lib) return lib;
  const errors: string[] = [];
  for (const name of LIB_NAMES) {
    try {
      lib = dlopen(name, symbols).symbols;
      return lib;
    } catch (e) {
      errors.push(`${name}: ${(e as Error).message}`);
    }
  }
  throw new Error(`bzip2: cannot load libbz2 (install the libbz2-1.0 package): ${errors.join("; ")}`);
}

export class Bzip2Error extends Error {}

/** bzip2 with 900k blocks, as the `bzip2` tool and Flatcar's generator use. */
export function bzip2(input: Uint8Array): Uint8Array {
  // bzip2's documented worst case: 1% larger plus 600 bytes.
  const out = new Uint8Array(Math.ceil(input.length * 1.01) + 600);
  const len = new Uint32Array([out.length]);
  const src = input.length === 0 ? new Uint8Array(1) : input;
  const rc = load().BZ2_bzBuffToBuffCompress(ptr(out), ptr(len), ptr(src), input.length, 9, 0, 0);
  if (rc !== BZ_OK) throw new Bzip2Error(`bzip2: compression failed (${BZ_MESSAGES[rc] ?? `code ${rc}`})`);
  return out.subarray(0, len[0]);
}

/** Decompresses into a buffer of at most `maxOut` bytes; returns the filled part. */
export function bunzip2(input: Uint8Array, maxOut: number, into?: Uint8Array): Uint8Array {
  const out = into && into.length >= maxOut ? into : new Uint8Array(Math.max(maxOut, 1));
  const len = new Uint32Array([maxOut]);
  if (input.length === 0) throw new Bzip2Error("bzip2: empty input");
  const rc = load().BZ2_bzBuffToBuffDecompress(ptr(out), ptr(len), ptr(input), input.length, 0, 0);
  if (rc !== BZ_OK) throw new Bzip2Error(`bzip2: ${BZ_MESSAGES[rc] ?? `error code ${rc}`}`);
  return out.subarray(0, len[0]);
}

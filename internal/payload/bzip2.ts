// bzip2 through the system's libbz2 (libbz2-1.0, a dependency of dpkg, so on every Debian machine).
// Why not an npm package: the pure-JS ones (compressjs, seek-bzip, unbzip2-stream) decode at a
// tenth of libbz2's speed and only compressjs can compress; applying a payload must keep up
// with the disk, so the real library is called through bun:ffi.
import * as ffi from "bun:ffi";

export interface Bzip2Library {
  /** bzip2 with 900k blocks, as the `bzip2` tool and Flatcar's generator use. */
  compress(input: Uint8Array): Uint8Array;
  /** Decompresses into `into` (at least `maxOut` bytes); returns the filled part. Throws Error with a readable message. */
  decompress(input: Uint8Array, maxOut: number, into: Uint8Array): Uint8Array;
}

/**
 * Binds libbz2. Self-contained (uses only its parameter): the apply workers get its source text,
 * so it must not refer to anything else in this module.
 */
export function bzip2Library(f: typeof ffi): Bzip2Library {
  const symbols = {
    BZ2_bzBuffToBuffCompress: { args: ["ptr", "ptr", "ptr", "u32", "i32", "i32", "i32"], returns: "i32" },
    BZ2_bzBuffToBuffDecompress: { args: ["ptr", "ptr", "ptr", "u32", "i32", "i32"], returns: "i32" },
  } as const;
  const errors: string[] = [];
  let lib: ReturnType<typeof f.dlopen<typeof symbols>>["symbols"] | undefined;
  for (const name of ["libbz2.so.1.0", "libbz2.so.1", "libbz2.so"]) {
    try {
      lib = f.dlopen(name, symbols).symbols;
      break;
    } catch (e) {
      errors.push(`${name}: ${(e as Error).message}`);
    }
  }
  if (!lib) throw new Error(`bzip2: cannot load libbz2 (install the libbz2-1.0 package): ${errors.join("; ")}`);
  const bz = lib;
  const messages: Record<number, string> = {
    [-2]: "bad parameter",
    [-3]: "out of memory",
    [-4]: "data integrity error (corrupt bzip2 data)",
    [-5]: "not bzip2 data",
    [-7]: "unexpected end of bzip2 data",
    [-8]: "decompressed data larger than the operation's extents",
  };
  const len = new Uint32Array(1);
  return {
    compress(input) {
      // bzip2's documented worst case: 1% larger plus 600 bytes.
      const out = new Uint8Array(Math.ceil(input.length * 1.01) + 600);
      len[0] = out.length;
      const src = input.length === 0 ? new Uint8Array(1) : input;
      const rc = bz.BZ2_bzBuffToBuffCompress(f.ptr(out), f.ptr(len), f.ptr(src), input.length, 9, 0, 0);
      if (rc !== 0) throw new Error(`bzip2: compression failed (${messages[rc] ?? `code ${rc}`})`);
      return out.subarray(0, len[0]);
    },
    decompress(input, maxOut, into) {
      if (input.length === 0) throw new Error("bzip2: empty data");
      len[0] = maxOut;
      const rc = bz.BZ2_bzBuffToBuffDecompress(f.ptr(into), f.ptr(len), f.ptr(input), input.length, 0, 0);
      if (rc !== 0) throw new Error(`bzip2: ${messages[rc] ?? `error code ${rc}`}`);
      return into.subarray(0, len[0]);
    },
  };
}

let lib: Bzip2Library | undefined;
const load = () => (lib ??= bzip2Library(ffi));

/** bzip2 on the calling thread (the generator's; applying decompresses on the workers). */
export function bzip2(input: Uint8Array): Uint8Array {
  return load().compress(input);
}

// write_files content decoding (config.DecodeContent): base64 as Go's StdEncoding reads it
// (padding required, only CR and LF ignored) and gzip, alone or combined.
import { gunzipSync } from "node:zlib";

export class DecodeError extends Error {}

function base64(bytes: Uint8Array): Uint8Array {
  const s = Buffer.from(bytes).toString("latin1").replace(/[\r\n]/g, "");
  if (s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) throw new DecodeError("Unable to decode base64: illegal base64 data");
  return Buffer.from(s, "base64");
}

function gzip(bytes: Uint8Array): Uint8Array {
  try {
    return gunzipSync(bytes);
  } catch (e) {
    throw new DecodeError(`Unable to decode gzip: ${(e as Error).message}`);
  }
}

/** The file's bytes; `content` is the YAML string's bytes (or a `!!binary` scalar's). */
export function decodeContent(content: Uint8Array, encoding: string): Uint8Array {
  switch (encoding) {
    case "":
      return content;
    case "b64":
    case "base64":
      return base64(content);
    case "gz":
    case "gzip":
      return gzip(content);
    case "gz+base64":
    case "gzip+base64":
    case "gz+b64":
    case "gzip+b64":
      return gzip(base64(content));
    default:
      throw new DecodeError(`Unsupported encoding "${encoding}"`);
  }
}

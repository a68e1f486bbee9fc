// The CrAU container (spec §3.1): 20-byte big-endian header, manifest, blobs, signatures blob;
// and the signature scheme (§3.5): RSASSA-PKCS1-v1_5 over SHA-256 of everything before the
// signatures blob, carried as Signature version 2.
import { constants, createPrivateKey, createPublicKey, privateEncrypt, publicDecrypt, type KeyObject } from "node:crypto";
import { PayloadError } from "./errors.ts";

export const MAGIC = new Uint8Array([0x43, 0x72, 0x41, 0x55]); // "CrAU"
const FORMAT_VERSION = 1n;
export const HEADER_SIZE = 20;
export const DEFAULT_BLOCK_SIZE = 4096;
/** Operations of a full payload cover 1 MiB each (256 blocks), as delta_generator cuts them. */
export const CHUNK_SIZE = 1 << 20;
/** The only signature version clients look for. */
export const SIGNATURE_VERSION = 2;
/** A sane bound so a corrupt header cannot make us buffer gigabytes of "manifest". */
const MAX_MANIFEST_SIZE = 64 << 20;

export function encodeHeader(manifestSize: number): Uint8Array {
  const h = new Uint8Array(HEADER_SIZE);
  h.set(MAGIC, 0);
  const v = new DataView(h.buffer);
  v.setBigUint64(4, FORMAT_VERSION);
  v.setBigUint64(12, BigInt(manifestSize));
  return h;
}

/** Returns the manifest size of a 20-byte header, or throws the check that failed. */
export function parseHeader(h: Uint8Array): number {
  for (let i = 0; i < 4; i++) {
    if (h[i] !== MAGIC[i]) {
      const got = Array.from(h.subarray(0, 4), (b) => b.toString(16).padStart(2, "0")).join(" ");
      throw new PayloadError("magic", `not a CrAU payload: magic is ${got}, expected 43 72 41 55 ("CrAU")`);
    }
  }
  const v = new DataView(h.buffer, h.byteOffset, h.byteLength);
  const size = v.getBigUint64(12);
  if (size === 0n || size > BigInt(MAX_MANIFEST_SIZE)) {
    throw new PayloadError("metadata-size", `manifest size ${size} out of range (1..${MAX_MANIFEST_SIZE})`);
  }
  return Number(size);
}

// DER DigestInfo prefix for SHA-256 (RFC 8017 §9.2 note 1): what PKCS#1 v1.5 puts before the hash.
const SHA256_DIGEST_INFO = Buffer.from("3031300d060960864801650304020105000420", "hex");

export function loadPrivateKey(pem: string | Buffer): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (e) {
    throw new Error(`cannot read the private key: ${(e as Error).message}`);
  }
  if (key.asymmetricKeyType !== "rsa") throw new Error(`the signing key is ${key.asymmetricKeyType}, not RSA`);
  const bits = key.asymmetricKeyDetails?.modulusLength;
  if (bits !== 2048) throw new Error(`the signing key is RSA-${bits}; payloads are signed with RSA-2048`);
  return key;
}

export function loadPublicKey(pem: string | Buffer): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (e) {
    throw new PayloadError("signature", `cannot read the public key: ${(e as Error).message}`);
  }
  if (key.asymmetricKeyType !== "rsa") throw new PayloadError("signature", `the public key is ${key.asymmetricKeyType}, not RSA`);
  return key;
}

/** PKCS#1 v1.5 signature of an already computed SHA-256 digest (what `openssl pkeyutl -pkeyopt digest:sha256` makes). */
export function signDigest(digest: Uint8Array, key: KeyObject): Uint8Array {
  return privateEncrypt({ key, padding: constants.RSA_PKCS1_PADDING }, Buffer.concat([SHA256_DIGEST_INFO, digest]));
}

/** Whether `sig` is a PKCS#1 v1.5 SHA-256 signature of `digest` under `key`. */
export function verifyDigest(digest: Uint8Array, sig: Uint8Array, key: KeyObject): boolean {
  let recovered: Buffer;
  try {
    recovered = publicDecrypt({ key, padding: constants.RSA_PKCS1_PADDING }, sig);
  } catch {
    return false; // wrong length or padding: not a signature by this key
  }
  return recovered.equals(Buffer.concat([SHA256_DIGEST_INFO, digest]));
}

export function hex(b: Uint8Array): string {
  return Buffer.from(b).toString("hex");
}

export function b64(b: Uint8Array): string {
  return Buffer.from(b).toString("base64");
}

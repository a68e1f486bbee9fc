// The ChromeOS/CoreOS boot attributes in bits 48-56 of a GPT entry's 64-bit attribute field (§4.2).
// Every other bit is kept as it was.
import { GptError } from "./errors.ts";

export interface BootAttrs {
  /** 0-15; 0 = never boot. */
  readonly priority: number;
  /** Boot attempts left, 0-15. */
  readonly tries: number;
  readonly successful: boolean;
}

const PRIORITY_SHIFT = 48n;
const TRIES_SHIFT = 52n;
const SUCCESSFUL_SHIFT = 56n;
const NIBBLE = 0xfn;

export function decodeAttrs(a: bigint): BootAttrs {
  return {
    priority: Number((a >> PRIORITY_SHIFT) & NIBBLE),
    tries: Number((a >> TRIES_SHIFT) & NIBBLE),
    successful: ((a >> SUCCESSFUL_SHIFT) & 1n) === 1n,
  };
}

export function encodeAttrs(a: bigint, set: Partial<BootAttrs>): bigint {
  let out = a;
  const put = (shift: bigint, mask: bigint, v: number) => {
    out = (out & ~(mask << shift)) | ((BigInt(v) & mask) << shift);
  };
  if (set.priority !== undefined) put(PRIORITY_SHIFT, NIBBLE, checkNibble("priority", set.priority));
  if (set.tries !== undefined) put(TRIES_SHIFT, NIBBLE, checkNibble("tries", set.tries));
  if (set.successful !== undefined) put(SUCCESSFUL_SHIFT, 1n, set.successful ? 1 : 0);
  return out;
}

function checkNibble(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 0 || v > 15) throw new GptError(`${name} must be 0-15, not ${v}`);
  return v;
}

// coreos update-engine payload: build, verify, show and apply CrAU payloads (spec §3).
// Flags here; the format and the streaming work are internal/payload.
import { readFileSync } from "node:fs";
import { FlagError, parseFlags, usage, type FlagDef } from "../../internal/flags/flags.ts";
import {
  applyPayloadFile,
  b64,
  buildPayload,
  downloadAndApply,
  hex,
  HOLE,
  inspectPayload,
  OpType,
  PayloadError,
  ProcedureType,
  verifyPayload,
  type ApplyResult,
  type InstallOperation,
} from "../../internal/payload/index.ts";
import { pickCommand } from "../subcommand.ts";

const ENV_PREFIX = "COREOS_PAYLOAD";
const s = (d: string, description: string): FlagDef => ({ kind: "string", default: d, description });
const u = (description: string): FlagDef => ({ kind: "uint", default: 0, description });
const b = (description: string): FlagDef => ({ kind: "bool", default: false, description });

const CHECKS = {
  size: u("expected payload size in bytes (Omaha package@size)"),
  sha256: s("", "expected base64 SHA-256 of the whole payload (Omaha action@sha256)"),
};

const COMMANDS = {
  build: {
    args: "",
    about: "make a signed full payload from a USR image (1 MiB REPLACE/REPLACE_BZ operations)",
    flags: {
      image: s("", "the USR filesystem image"),
      key: s("", "RSA-2048 private key (PEM)"),
      kernel: s("", "kernel image to carry as the KERNEL procedure"),
      out: s("", "payload file to write"),
    },
  },
  verify: {
    args: "PAYLOAD",
    about: "check the signature, every operation's hash and data, and optionally size and SHA-256",
    flags: { key: s("", "RSA public key (PEM); without it the signature is not checked"), ...CHECKS },
  },
  show: {
    args: "PAYLOAD",
    about: "print the header, manifest and signatures",
    flags: { ops: b("list every operation"), json: b("print the manifest as JSON") },
  },
  apply: {
    args: "PAYLOAD|URL",
    about: "write a payload file (or download one, resumably) onto a partition and check the result",
    flags: {
      target: s("", "partition to write: a block device, or a file (a disk image with --offset)"),
      offset: u("byte offset of the partition inside --target"),
      length: u("partition size in bytes (default: up to the end of --target)"),
      key: s("", "RSA public key (PEM); without it the signature is not checked"),
      "kernel-target": s("", "file the KERNEL procedure writes (default: the kernel is checked only)"),
      "state-dir": s("", "resume state of a download (required with a URL)"),
      ...CHECKS,
    },
  },
} as const satisfies Record<string, { args: string; about: string; flags: Record<string, FlagDef> }>;

function help(): string {
  const w = Math.max(...Object.keys(COMMANDS).map((k) => k.length));
  return `Usage: coreos update-engine payload <command> [flags] [PAYLOAD]\n\n${Object.entries(COMMANDS)
    .map(([k, c]) => `  ${k.padEnd(w)}  ${c.about}`)
    .join("\n")}\n`;
}

const out = (line: string) => void process.stdout.write(`${line}\n`);

function one(positionals: string[], what: string): string {
  if (positionals.length !== 1) throw new FlagError(`one ${what} expected, got ${positionals.length} arguments`);
  return positionals[0]!;
}

function need(v: string, flag: string): string {
  if (v === "") throw new FlagError(`missing --${flag}`);
  return v;
}

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    throw new FlagError(`cannot read the ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

function sha256Flag(raw: string): Uint8Array | undefined {
  if (raw === "") return undefined;
  const bytes = Buffer.from(raw, "base64");
  if (bytes.length !== 32 || bytes.toString("base64") !== raw) throw new FlagError(`invalid value "${raw}" for flag -sha256: want base64 of 32 bytes`);
  return bytes;
}

/** Progress on stderr: a rewritten line on a terminal, a line per quarter otherwise. */
function progress(label: string): { update(done: number, total: number): void; end(): void } {
  const tty = process.stderr.isTTY;
  let lastShown = -1;
  return {
    update(done, total) {
      if (total <= 0) return;
      const pct = Math.floor((done / total) * 100);
      if (tty) {
        if (pct !== lastShown) process.stderr.write(`\r${label}: ${pct}% (${(done / 2 ** 20).toFixed(1)} of ${(total / 2 ** 20).toFixed(1)} MiB)`);
      } else if (Math.floor(pct / 25) !== Math.floor(lastShown / 25)) {
        process.stderr.write(`${label}: ${pct}%\n`);
      }
      lastShown = pct;
    },
    end() {
      if (tty && lastShown >= 0) process.stderr.write("\n");
    },
  };
}

function summary(r: ApplyResult): void {
  out(`payload size:      ${r.size}`);
  out(`payload sha256:    ${b64(r.sha256)}`);
  out(`signature:         ${r.signatureChecked ? "verified" : "not checked (no --key)"}`);
  out(`operations:        ${r.operations}`);
  out(`partition size:    ${r.partitionSize}`);
  out(`partition sha256:  ${hex(r.partitionHash)}`);
  if (r.kernelHash) out(`kernel sha256:     ${hex(r.kernelHash)}`);
}

async function build(v: Record<string, string | number | boolean>): Promise<number> {
  const p = progress("build");
  const r = await buildPayload({
    imagePath: need(String(v.image), "image"),
    privateKeyPem: readText(need(String(v.key), "key"), "private key"),
    kernelPath: v.kernel === "" ? undefined : String(v.kernel),
    outPath: need(String(v.out), "out"),
    onProgress: p.update,
  });
  p.end();
  out(`wrote ${v.out}`);
  out(`size:              ${r.size}`);
  out(`sha256 (base64):   ${b64(r.sha256)}`);
  out(`sha256 (hex):      ${hex(r.sha256)}`);
  out(`operations:        ${r.replace + r.replaceBz} (${r.replace} REPLACE, ${r.replaceBz} REPLACE_BZ)`);
  out(`partition size:    ${r.partitionSize}`);
  out(`partition sha256:  ${hex(r.partitionHash)}`);
  return 0;
}

async function verify(file: string, v: Record<string, string | number | boolean>, given: Set<string>): Promise<number> {
  const p = progress("verify");
  const r = await verifyPayload(file, {
    publicKeyPem: v.key === "" ? undefined : readText(String(v.key), "public key"),
    size: given.has("size") ? Number(v.size) : undefined,
    sha256: sha256Flag(String(v.sha256)),
    onProgress: p.update,
  });
  p.end();
  out(`${file}: OK`);
  summary(r);
  return 0;
}

const extents = (op: InstallOperation) =>
  op.dstExtents.map((e) => (e.startBlock === HOLE ? `hole+${e.numBlocks}` : `${e.startBlock}+${e.numBlocks}`)).join(",");

function show(file: string, v: Record<string, string | number | boolean>): number {
  const info = inspectPayload(file);
  const m = info.manifest;
  if (v.json) {
    const bytes = (x: Uint8Array) => hex(x);
    out(JSON.stringify({ ...info, version: Number(info.version) }, (_k, val) => (val instanceof Uint8Array ? bytes(val) : val), 2));
    return 0;
  }
  const count = (ops: InstallOperation[], t: OpType) => ops.filter((o) => o.type === t).length;
  out(`magic:              CrAU`);
  out(`version:            ${info.version}`);
  out(`file size:          ${info.fileSize}`);
  out(`manifest size:      ${info.metadataSize - 20}`);
  out(`metadata size:      ${info.metadataSize}`);
  out(`block size:         ${m.blockSize ?? 4096}`);
  out(`operations:         ${m.partitionOperations.length} (${count(m.partitionOperations, OpType.REPLACE)} REPLACE, ${count(m.partitionOperations, OpType.REPLACE_BZ)} REPLACE_BZ)`);
  out(`noop operations:    ${m.noopOperations.length}`);
  if (m.newPartitionInfo) out(`new partition:      ${m.newPartitionInfo.size} bytes, sha256 ${hex(m.newPartitionInfo.hash ?? new Uint8Array())}`);
  if (m.oldPartitionInfo) out(`old partition:      ${m.oldPartitionInfo.size} bytes, sha256 ${hex(m.oldPartitionInfo.hash ?? new Uint8Array())}`);
  for (const p of m.procedures) {
    const t = p.type === undefined ? "KERNEL" : (ProcedureType[p.type] ?? `type ${p.type}`);
    out(`procedure ${t}:   ${p.operations.length} operations, ${p.newInfo?.size ?? "?"} bytes, sha256 ${hex(p.newInfo?.hash ?? new Uint8Array())}`);
  }
  if (m.signaturesOffset !== undefined) out(`signatures:         ${m.signaturesSize} bytes at blob offset ${m.signaturesOffset}`);
  else out(`signatures:         none (unsigned payload)`);
  for (const s of info.signatures?.signatures ?? []) out(`  signature version ${s.version}: ${s.data?.length ?? 0} bytes`);
  if (v.ops) {
    const all = [
      ...m.partitionOperations.map((o) => ["partition", o] as const),
      ...m.procedures.flatMap((p) => p.operations.map((o) => ["kernel", o] as const)),
      ...m.noopOperations.map((o) => ["noop", o] as const),
    ];
    for (const [where, o] of all) {
      out(`  ${where.padEnd(9)} ${OpType[o.type].padEnd(10)} data ${o.dataOffset}+${o.dataLength} -> ${extents(o)}${o.dataSha256Hash ? ` sha256 ${hex(o.dataSha256Hash)}` : ""}`);
    }
  }
  return 0;
}

async function apply(source: string, v: Record<string, string | number | boolean>, given: Set<string>): Promise<number> {
  const target = { path: need(String(v.target), "target"), offset: Number(v.offset), length: given.has("length") ? Number(v.length) : undefined };
  const publicKeyPem = v.key === "" ? undefined : readText(String(v.key), "public key");
  const kernelPath = v["kernel-target"] === "" ? undefined : String(v["kernel-target"]);
  const size = given.has("size") ? Number(v.size) : undefined;
  const p = progress("apply");
  let r: ApplyResult;
  if (/^https?:\/\//.test(source)) {
    const stateDir = need(String(v["state-dir"]), "state-dir");
    const d = await downloadAndApply({ url: source, size, sha256Base64: v.sha256 === "" ? undefined : (sha256Flag(String(v.sha256)), String(v.sha256)), publicKeyPem, target, kernelPath, stateDir, onProgress: p.update });
    p.end();
    if (d.resumedFrom > 0) out(`resumed at byte:   ${d.resumedFrom}`);
    r = d;
  } else {
    r = await applyPayloadFile(source, target, { publicKeyPem, kernelPath, size, sha256: sha256Flag(String(v.sha256)), onProgress: p.update });
    p.end();
  }
  out(`applied ${source} to ${target.path}${target.offset ? ` at offset ${target.offset}` : ""}`);
  summary(r);
  return 0;
}

export async function run(args: string[]): Promise<number> {
  const picked = pickCommand(args, COMMANDS, { name: "coreos update-engine payload", help });
  if ("exit" in picked) return picked.exit;
  const { cmd, rest } = picked;
  const c = COMMANDS[cmd];
  try {
    const p = parseFlags(c.flags, rest, process.env as Record<string, string | undefined>, ENV_PREFIX);
    if (p.help) {
      out(`Usage: coreos update-engine payload ${cmd} [flags] ${c.args}\n\n${c.about}\n\n${usage(c.flags, ENV_PREFIX)}`);
      return 0;
    }
    const v = p.values as Record<string, string | number | boolean>;
    const given = p.given as Set<string>;
    switch (cmd) {
      case "build":
        if (p.positionals.length > 0) throw new FlagError(`unexpected argument ${p.positionals[0]}`);
        return await build(v);
      case "verify":
        return await verify(one(p.positionals, "PAYLOAD"), v, given);
      case "show":
        return show(one(p.positionals, "PAYLOAD"), v);
      case "apply":
        return await apply(one(p.positionals, "PAYLOAD or URL"), v, given);
    }
  } catch (e) {
    if (e instanceof FlagError) {
      process.stderr.write(`coreos update-engine payload ${cmd}: ${e.message}\n`);
      return 2;
    }
    const msg = e instanceof PayloadError ? `${e.message} (error ${e.code})` : (e as Error).message;
    process.stderr.write(`coreos update-engine payload ${cmd}: ${msg}\n`);
    return 1;
  }
  return 2;
}

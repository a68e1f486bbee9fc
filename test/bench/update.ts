// update benchmark: apply a ~512 MiB full payload from a local HTTP server to a partition of a
// disk image file with the real binary (`coreos update-engine payload apply URL`: download, op
// hashes, bunzip2, writes, payload hash, signature, fsync, read-back partition hash), against the
// machine's raw limits measured in the same run on the same files: `sha256sum` of the payload
// file and `dd` of the same size to the same disk (conv=fdatasync). Prints MB/s of each and the
// ratio of ours to the slower of the two (target >= 0.8). The machine is often shared, so it
// also prints CPU seconds (ours over all threads, and sha256sum's) and, timed on one thread
// before the runs, the work no implementation can skip: libbz2 on the distinct REPLACE_BZ blobs and the
// three SHA-256 passes (file, operations, written partition).
//
// Image content (per 1 MiB chunk, from a seeded generator): 70% random (already-compressed file
// data: a Flatcar USR is btrfs with zstd), 20% zeros (free space), 10% text (uncompressed files
// and metadata). The image is sized so the payload comes out at about 512 MiB.
//
// env: BENCH_PAYLOAD_MIB=512, BENCH_DIR (default: a temp dir under the OS temp dir), BENCH_REPEAT=1
import * as ffi from "bun:ffi";
import { createHash, randomFillSync } from "node:crypto";
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { generateKeyPairSync } from "node:crypto";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { bzip2Library } from "../../internal/payload/bzip2.ts";
import { HEADER_SIZE, parseHeader } from "../../internal/payload/format.ts";
import { b64, buildPayload, OpType } from "../../internal/payload/index.ts";
import { decodeManifest } from "../../internal/payload/proto.ts";
import { BIN } from "../helpers/procs.ts";

const MiB = 1 << 20;
const PAYLOAD_MIB = Number(process.env.BENCH_PAYLOAD_MIB ?? 512);
const REPEAT = Number(process.env.BENCH_REPEAT ?? 1);
const MIX = { random: 0.7, zeros: 0.2, text: 0.1 };
// Random chunks stay 1:1, zeros vanish, text shrinks ~4x: size the image for the payload wanted.
const IMAGE_MIB = Math.round(PAYLOAD_MIB / (MIX.random + MIX.text / 4));

const dir = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), "coreos-bench-update-"));
const mbps = (bytes: number, s: number) => bytes / 1e6 / s;
const log = (s: string) => void process.stderr.write(`${s}\n`);

function makeText(): Uint8Array {
  const words = ["usr", "lib64", "systemd", "share", "locale", "LC_MESSAGES", "python3", "site-packages", "__init__", "config", "0644", "root", "ExecStart", "Description", "Wants", "network-online.target"];
  let x = 12345;
  const rnd = () => ((x = (x * 1103515245 + 12345) & 0x7fffffff), x);
  const parts: string[] = [];
  let len = 0;
  while (len < 4 * MiB) {
    const line = `${Array.from({ length: 3 + (rnd() % 8) }, () => words[rnd() % words.length]).join("/")} ${rnd().toString(36)} ${rnd() % 100000}\n`;
    parts.push(line);
    len += line.length;
  }
  return new TextEncoder().encode(parts.join("")).subarray(0, 4 * MiB);
}

function makeImage(path: string): void {
  const fd = openSync(path, "w");
  const text = makeText();
  const chunk = new Uint8Array(MiB);
  let x = 42;
  for (let i = 0; i < IMAGE_MIB; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    const r = (x % 1000) / 1000;
    if (r < MIX.random) randomFillSync(chunk);
    else if (r < MIX.random + MIX.zeros) chunk.fill(0);
    else {
      const at = (x >> 3) % (3 * MiB);
      chunk.set(text.subarray(at, at + MiB));
    }
    writeSync(fd, chunk);
  }
  closeSync(fd);
}

const threadCpu = () => {
  const c = process.threadCpuUsage();
  return (c.user + c.system) / 1e6;
};

/**
 * The work no implementation can skip, timed on one thread of this process: libbz2 on every
 * REPLACE_BZ blob, and the three SHA-256 passes (whole file, each operation's blob, the written
 * partition). Tells how much of our CPU time is overhead.
 */
function unavoidable(payloadPath: string, imagePath: string): { bunzip2: number; text: number; textOps: number; sha256: number } {
  const file = readFileSync(payloadPath);
  const metadataSize = HEADER_SIZE + parseHeader(file.subarray(0, HEADER_SIZE));
  const m = decodeManifest(file.subarray(HEADER_SIZE, metadataSize));
  const bz = bzip2Library(ffi);
  const out = new Uint8Array(2 * MiB);
  let bunzip2 = 0;
  let text = 0;
  let textOps = 0;
  let sha256 = 0;
  // an identical blob need only be decoded once (ours reuses the output)
  const decoded = new Set<string>();
  for (const op of m.partitionOperations) {
    const blob = file.subarray(metadataSize + op.dataOffset!, metadataSize + op.dataOffset! + op.dataLength!);
    let t = threadCpu();
    createHash("sha256").update(blob).digest();
    sha256 += threadCpu() - t;
    if (op.type !== OpType.REPLACE_BZ) continue;
    const key = `${blob.length}:${b64(op.dataSha256Hash!)}`;
    if (decoded.has(key)) continue;
    decoded.add(key);
    t = threadCpu();
    bz.decompress(blob, out.length, out);
    const d = threadCpu() - t;
    bunzip2 += d;
    // zeros shrink to a few dozen bytes, random data is not compressed: the rest is text
    if (blob.length > 4096) (text += d), textOps++;
  }
  let t = threadCpu();
  createHash("sha256").update(file).digest();
  const fd = openSync(imagePath, "r");
  const h = createHash("sha256");
  for (let n; (n = readSync(fd, out, 0, out.length, null)) > 0; ) h.update(out.subarray(0, n));
  h.digest();
  closeSync(fd);
  sha256 += threadCpu() - t;
  return { bunzip2, text, textOps, sha256 };
}

interface Timing {
  wall: number;
  /** user + system CPU seconds: tells a busy machine (wall >> cpu / threads) from slow code. */
  cpu: number;
}

async function timed(cmd: string[]): Promise<Timing> {
  const t0 = performance.now();
  const p = Bun.spawn(cmd, { stdout: "pipe", stderr: "pipe" });
  const code = await p.exited;
  const wall = (performance.now() - t0) / 1000;
  if (code !== 0) throw new Error(`${cmd.join(" ")} exited ${code}: ${await new Response(p.stderr).text()}`);
  const u = p.resourceUsage()?.cpuTime;
  return { wall, cpu: u ? Number(u.user + u.system) / 1e6 : NaN };
}

/** Lets the write-back of the previous step finish, so it does not slow the next measurement. */
function settleDisk(): void {
  Bun.spawnSync(["sync"]);
}

async function main(): Promise<void> {
  try {
    const image = join(dir, "usr.img");
    const payload = join(dir, "payload.bin");
    const disk = join(dir, "disk.img");
    log(`image: ${IMAGE_MIB} MiB (70% random, 20% zeros, 10% text) in ${dir}`);
    let t0 = performance.now();
    makeImage(image);
    log(`  generated in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const k = generateKeyPairSync("rsa", { modulusLength: 2048 });
    writeFileSync(join(dir, "pub.pem"), k.publicKey.export({ type: "spki", format: "pem" }));
    t0 = performance.now();
    const built = await buildPayload({ imagePath: image, privateKeyPem: k.privateKey.export({ type: "pkcs8", format: "pem" }), outPath: payload });
    const buildS = (performance.now() - t0) / 1000;
    const size = statSync(payload).size;
    log(`payload: ${(size / MiB).toFixed(1)} MiB, ${built.replace} REPLACE + ${built.replaceBz} REPLACE_BZ operations, built in ${buildS.toFixed(1)} s (${mbps(IMAGE_MIB * MiB, buildS).toFixed(0)} MB/s of image)`);

    const fl = unavoidable(payload, image);
    log(`unavoidable work on one thread: bunzip2 ${fl.bunzip2.toFixed(2)} cpu s (${fl.text.toFixed(2)} s of it for ${fl.textOps} text chunks), SHA-256 x3 ${fl.sha256.toFixed(2)} cpu s`);

    const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response(Bun.file(payload)) });
    const url = `http://127.0.0.1:${server.port}/flatcar_production_update.gz`;
    const offset = 2 * MiB;
    const partSize = (IMAGE_MIB + 1) * MiB;
    const rows: { ours: Timing; sha: Timing; dd: Timing }[] = [];
    try {
      for (let run = 0; run < REPEAT; run++) {
        // a fresh sparse disk image each run: partition at 2 MiB
        rmSync(disk, { force: true });
        writeFileSync(disk, "");
        Bun.spawnSync(["truncate", "-s", String(offset + partSize + MiB), disk]);
        rmSync(join(dir, "state"), { recursive: true, force: true });
        settleDisk();
        const ours = await timed([BIN, "update-engine", "payload", "apply", url, "--target", disk, "--offset", String(offset), "--length", String(partSize), "--key", join(dir, "pub.pem"), "--size", String(size), "--sha256", b64(built.sha256), "--state-dir", join(dir, "state")]);
        settleDisk();
        const sha = await timed(["sha256sum", payload]);
        const ddOut = join(dir, "dd.bin");
        const dd = await timed(["dd", "if=/dev/zero", `of=${ddOut}`, "bs=1M", `count=${Math.round(size / MiB)}`, "conv=fdatasync", "status=none"]);
        rmSync(ddOut, { force: true });
        rows.push({ ours, sha, dd });
        const f = (t: Timing) => `${t.wall.toFixed(2)} s (cpu ${t.cpu.toFixed(2)} s)`;
        log(`  run ${run + 1}: ours ${f(ours)}, sha256sum ${f(sha)}, dd ${f(dd)}`);
      }
    } finally {
      server.stop(true);
    }
    const med = (k: "ours" | "sha" | "dd") => rows.map((r) => r[k].wall).sort((a, b) => a - b)[Math.floor(rows.length / 2)]!;
    const cpu = (k: "ours" | "sha") => rows.map((r) => r[k].cpu).sort((a, b) => a - b)[Math.floor(rows.length / 2)]!;
    const ours = mbps(size, med("ours"));
    const sha = mbps(size, med("sha"));
    const dd = mbps(Math.round(size / MiB) * MiB, med("dd"));
    const floor = Math.min(sha, dd);
    const ratio = ours / floor;
    console.log(`payload ${(size / MiB).toFixed(0)} MiB -> partition ${(IMAGE_MIB)} MiB (${built.replace} REPLACE, ${built.replaceBz} REPLACE_BZ)`);
    console.log(`ours (download+apply+verify)  ${ours.toFixed(0).padStart(6)} MB/s of payload  (${mbps(IMAGE_MIB * MiB, med("ours")).toFixed(0)} MB/s written)`);
    console.log(`sha256sum of the payload      ${sha.toFixed(0).padStart(6)} MB/s`);
    console.log(`dd conv=fdatasync, same size  ${dd.toFixed(0).padStart(6)} MB/s`);
    console.log(`ratio ours / slower raw limit ${ratio.toFixed(2).padStart(6)}   (target >= 0.80)${ratio >= 0.8 ? "" : "  !"}`);
    const perMiB = (k: "ours" | "sha") => ((cpu(k) * 1000) / (size / MiB)).toFixed(1);
    console.log(`cpu seconds: ours ${cpu("ours").toFixed(2)} (all threads), sha256sum ${cpu("sha").toFixed(2)}; cpu ms per MiB of payload: ours ${perMiB("ours")}, sha256sum ${perMiB("sha")}`);
    console.log(`unavoidable work in ours (one thread, timed before the runs): bunzip2 ${fl.bunzip2.toFixed(2)} s (text ${fl.text.toFixed(2)} s), SHA-256 x3 ${fl.sha256.toFixed(2)} s`);
    console.log(`load average at the end ${readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")} (${availableParallelism()} cpus): wall figures on a busy machine are only comparable within one run`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();

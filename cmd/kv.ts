// `coreos kv serve` (and `etcd`): flags and ETCD_* variables -> internal/kv/serve.
import { FlagError, parseFlags, usage } from "../internal/flags/flags.ts";
import { kvConfig, kvFlags } from "../internal/kv/config.ts";
import { BootstrapFailed, ListenError, serve } from "../internal/kv/serve.ts";
import { WalCorruptError } from "../internal/wal/wal.ts";

const HELP = `Usage: coreos kv serve [flags]   (or: etcd [flags])

An etcd-compatible key-value store speaking the etcd v2 keys API. Every flag can also be set
through its ETCD_* environment variable; a flag on the command line wins.

Flags:
${usage(kvFlags, "ETCD")}
`;

export async function runKv(args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  if (verb === undefined || verb === "--help" || verb === "-h" || verb === "help") {
    process.stdout.write(HELP);
    return verb === undefined ? 2 : 0;
  }
  if (verb !== "serve") {
    process.stderr.write(`coreos kv: unknown command "${verb}" (try: coreos kv serve --help)\n`);
    return 2;
  }
  try {
    const parsed = parseFlags(kvFlags, rest, process.env, "ETCD");
    if (parsed.help) {
      process.stdout.write(HELP);
      return 0;
    }
    if (parsed.positionals.length > 0) throw new FlagError(`unexpected argument "${parsed.positionals[0]}"`);
    await serve(kvConfig(parsed.values));
    return 0;
  } catch (e) {
    if (e instanceof FlagError) {
      process.stderr.write(`etcd: ${e.message}\n`);
      return 2;
    }
    if (e instanceof BootstrapFailed) return 1;
    if (e instanceof ListenError) {
      process.stderr.write(`etcd: ${e.message}\n`);
      return 1;
    }
    if (e instanceof WalCorruptError) {
      process.stderr.write(`etcd: cannot start: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

// `coreos ctl` / `etcdctl`: etcdctl v2 (etcd 3.4's ETCDCTL_API=2 tool) on the shared v2 client.
import { runApp } from "../internal/ctl/app.ts";
import { processIO } from "../internal/ctl/io.ts";

/** Runs etcdctl with the arguments after `ctl` (or after `etcdctl`); resolves to the exit code. */
export async function runCtl(argv: string[]): Promise<number> {
  // Ctrl-C ends a watch with status 0, as etcdctl's signal handler does.
  const interrupt = new AbortController();
  const onInt = () => interrupt.abort();
  process.on("SIGINT", onInt);
  try {
    return await runApp(argv, processIO(), interrupt.signal);
  } finally {
    process.off("SIGINT", onInt);
  }
}

if (import.meta.main) process.exit(await runCtl(process.argv.slice(2)));

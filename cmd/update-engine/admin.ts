// coreos update-engine admin: the update server's CLI (updateservicectl's verbs) over its API.
import { runAdmin } from "../../internal/updateserver/admin.ts";

export async function run(args: string[]): Promise<number> {
  return runAdmin(args, process.env as Record<string, string | undefined>, {
    out: (s) => void process.stdout.write(s),
    err: (s) => void process.stderr.write(s),
    fetch,
    file: (p) => Bun.file(p),
  });
}

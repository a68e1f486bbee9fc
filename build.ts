// `npm run build`: compiles cmd/coreos.ts into the single binary dist/coreos and links every
// program name it answers to beside it.
import { mkdirSync, rmSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { ALIAS_NAMES } from "./cmd/tools.ts";

const dist = join(import.meta.dir, "dist");
mkdirSync(dist, { recursive: true });
const result = await Bun.build({
  entrypoints: [join(import.meta.dir, "cmd/coreos.ts")],
  compile: { outfile: join(dist, "coreos") },
  // one chunk per tool, loaded when its command runs: a start parses only what it uses
  splitting: true,
  minify: { syntax: true, whitespace: true },
  sourcemap: "linked",
});
if (!result.success) {
  for (const m of result.logs) console.error(m);
  process.exit(1);
}
for (const name of ALIAS_NAMES) {
  const link = join(dist, name);
  rmSync(link, { force: true });
  symlinkSync("coreos", link);
}
console.log(`built dist/coreos and ${ALIAS_NAMES.length} links: ${ALIAS_NAMES.join(", ")}`);

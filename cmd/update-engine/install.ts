// coreos update-engine install: writes update-engine.service and the com.coreos.update1 bus
// policy under an image root (§2.5, §2.7). Flags here; the files are internal/update/units.ts.
import { FlagError, parseFlags, usage, type FlagDef } from "../../internal/flags/flags.ts";
import { installSystemFiles } from "../../internal/update/install.ts";
import { DEFAULT_BIN, execWord } from "../../internal/update/units.ts";

const s = (d: string, description: string): FlagDef => ({ kind: "string", default: d, description });

const FLAGS = {
  root: s("/", "the image root the files go under"),
  bin: s(DEFAULT_BIN, "the update_engine the unit starts (ExecStart=)"),
};

export async function run(args: string[]): Promise<number> {
  let v;
  try {
    const p = parseFlags(FLAGS, args, process.env as Record<string, string | undefined>, "UPDATE_ENGINE_INSTALL");
    if (p.help) {
      process.stdout.write(`Usage: coreos update-engine install [flags]\n\n${usage(FLAGS, "UPDATE_ENGINE_INSTALL")}\n`);
      return 0;
    }
    if (p.positionals.length > 0) throw new FlagError(`unexpected argument "${p.positionals[0]}"`);
    v = p.values;
    if (v.root === "") throw new FlagError(`invalid value "" for flag -root: want a directory`);
    if (execWord(v.bin) === null) throw new FlagError(`invalid value "${v.bin}" for flag -bin: want an absolute path without quotes, backslashes or control characters`);
  } catch (e) {
    if (e instanceof FlagError) {
      process.stderr.write(`${e.message}\n`);
      return 2;
    }
    throw e;
  }
  try {
    for (const f of installSystemFiles(v.root, v.bin)) process.stdout.write(`${f.changed ? "wrote" : "unchanged"} ${f.path}\n`);
  } catch (e) {
    process.stderr.write(`coreos update-engine install: ${(e as Error).message}\n`);
    return 1;
  }
  return 0;
}

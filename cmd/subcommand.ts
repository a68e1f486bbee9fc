// The first word of a CLI that has several commands (`coreos update-engine <verb>`,
// `coreos update-engine disk <command>`, ...): help when asked for or when the word is missing,
// one readable line for an unknown word, otherwise the command and the arguments after it.

export type Picked<C extends string> = { cmd: C; rest: string[] } | { exit: number };

export function pickCommand<C extends string>(
  args: string[],
  commands: Readonly<Record<C, unknown>>,
  o: { name: string; help: () => string; word?: string },
): Picked<C> {
  const [cmd, ...rest] = args;
  if (cmd === undefined || cmd === "--help" || cmd === "-h" || cmd === "help") {
    process.stdout.write(o.help());
    return { exit: cmd === undefined ? 2 : 0 };
  }
  // Own keys only: "toString" is not a command.
  if (!Object.hasOwn(commands, cmd)) {
    process.stderr.write(`${o.name}: unknown ${o.word ?? "command"} "${cmd}" (try: ${o.name} --help)\n`);
    return { exit: 2 };
  }
  return { cmd: cmd as C, rest };
}

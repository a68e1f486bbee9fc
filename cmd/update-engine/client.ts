// Placeholder until this verb lands.
export async function run(_args: string[]): Promise<number> {
  process.stderr.write("coreos update-engine client: not built yet\n");
  return 2;
}

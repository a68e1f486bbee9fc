// Placeholder until the supervisor lands.
export async function runSupervisor(args: string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    process.stdout.write("coreos supervisor: run units without systemd (not built yet)\n");
    return 0;
  }
  process.stderr.write("coreos supervisor: not built yet\n");
  return 2;
}

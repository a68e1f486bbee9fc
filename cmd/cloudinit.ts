// Placeholder until coreos-cloudinit lands.
export async function runCloudinit(args: string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    process.stdout.write("coreos cloudinit: configure the host from cloud-config (not built yet)\n");
    return 0;
  }
  process.stderr.write("coreos cloudinit: not built yet\n");
  return 2;
}

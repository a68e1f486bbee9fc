// A 3-member cluster with client and peer TLS as etcd does it: members replicate over https with
// certificates from one CA; the real etcdctl with such a certificate works; a client without one,
// and a peer with a certificate from another CA, are refused.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { TestCluster } from "../helpers/cluster.ts";
import { makeCA, type CertFiles } from "../helpers/certs.ts";
import { BIN, cleanup, tempDir } from "../helpers/procs.ts";

const dir = tempDir("coreos-ctls-");
let ca: CertFiles;
let other: CertFiles;
let c: TestCluster;

beforeAll(async () => {
  [ca, other] = await Promise.all([makeCA(join(dir, "ca"), "cluster CA"), makeCA(join(dir, "other"), "another CA")]);
  c = await TestCluster.start(3, "ours", [], ca);
}, 60_000);

afterAll(async () => {
  await c?.stopAll();
  cleanup(dir);
});

async function etcdctl(args: string[], cmd = ["etcdctl"]) {
  const p = Bun.spawn([...cmd, "--endpoints", c.endpoints.join(","), ...args], {
    env: { ...process.env, ETCDCTL_API: "2" },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  return { stdout, stderr, code: await p.exited };
}

test("the members replicate over https and the real etcdctl with a certificate works", async () => {
  const tls = ["--ca-file", ca.caCert, "--cert-file", ca.client.cert, "--key-file", ca.client.key];
  expect(await etcdctl([...tls, "set", "/secure", "yes"])).toMatchObject({ stdout: "yes\n", code: 0 });
  const list = await etcdctl([...tls, "member", "list"]);
  expect(list.stdout.trim().split("\n")).toHaveLength(3);
  expect(list.stdout).toContain("peerURLs=https://127.0.0.1:");
  expect((await etcdctl([...tls, "cluster-health"])).stdout).toContain("cluster is healthy");
  // Replicated: every member has it locally.
  for (let i = 0; i < 3; i++) {
    const r = await fetch(`${c.url(i)}/v2/keys/secure?quorum=true`, c.fetchTls());
    expect(((await r.json()) as { node: { value: string } }).node.value).toBe("yes");
  }
});

test("a client without a certificate is refused", async () => {
  const r = await etcdctl(["--ca-file", ca.caCert, "get", "/secure"]);
  expect(r.code).not.toBe(0);
  expect(r.stderr).toContain("certificate required");
});

test("a peer with a certificate from another CA is refused; one from the cluster's CA gets in", async () => {
  const post = (cert: CertFiles) =>
    fetch(`${c.peerUrl(0)}/raft`, {
      method: "POST",
      body: "not a batch",
      tls: { ca: Bun.file(ca.caCert), cert: Bun.file(cert.client.cert), key: Bun.file(cert.client.key) },
    } as RequestInit);
  await expect(post(other)).rejects.toThrow();
  // Past the handshake, the junk body gets a 400 from the raft handler.
  expect((await post(ca)).status).toBe(400);
});

test("our ctl takes --ca-file, --cert-file and --key-file like etcdctl", async () => {
  const ours = [...(process.env.COREOS_CMD?.split(" ") ?? [BIN]), "ctl"];
  const tls = ["--ca-file", ca.caCert, "--cert-file", ca.client.cert, "--key-file", ca.client.key];
  expect(await etcdctl([...tls, "set", "/ours", "ok"], ours)).toMatchObject({ stdout: "ok\n", code: 0 });
  expect(await etcdctl([...tls, "get", "/secure"], ours)).toMatchObject({ stdout: "yes\n", code: 0 });
  expect((await etcdctl([...tls, "cluster-health"], ours)).stdout).toContain("cluster is healthy");
  expect((await etcdctl(["--ca-file", ca.caCert, "get", "/secure"], ours)).code).not.toBe(0);
});

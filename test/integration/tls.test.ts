// Client TLS as etcd does it: https client URLs with --cert-file/--key-file, and with
// --client-cert-auth only clients holding a certificate from --trusted-ca-file get in.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { cleanup, freePort, startOurs, tempDir, type Server } from "../helpers/procs.ts";
import { makeCA, type CertFiles } from "../helpers/certs.ts";

const dir = tempDir("coreos-tls-");
let ca: CertFiles;
let other: CertFiles;
let ours: Server;
let url: string;

beforeAll(async () => {
  ca = await makeCA(join(dir, "ca"), "coreos test CA");
  other = await makeCA(join(dir, "other"), "some other CA");
  const port = freePort();
  url = `https://127.0.0.1:${port}`;
  ours = await startOurs({
    clientPort: port,
    extraArgs: [
      "--listen-client-urls", url, "--advertise-client-urls", url,
      "--cert-file", ca.server.cert, "--key-file", ca.server.key,
      "--client-cert-auth", "--trusted-ca-file", ca.caCert,
    ],
    readyUrl: url,
    readyTls: { ca: ca.caCert, cert: ca.client.cert, key: ca.client.key },
  });
}, 30_000);

afterAll(async () => {
  await ours?.stop();
  cleanup(dir);
});

async function etcdctl(args: string[]) {
  const p = Bun.spawn(["etcdctl", "--endpoints", url, ...args], {
    env: { ...process.env, ETCDCTL_API: "2" },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  return { stdout, stderr, code: await p.exited };
}

test("the real etcdctl with a certificate from the trusted CA works over https", async () => {
  const tls = ["--ca-file", ca.caCert, "--cert-file", ca.client.cert, "--key-file", ca.client.key];
  expect(await etcdctl([...tls, "set", "/secure", "yes"])).toMatchObject({ stdout: "yes\n", code: 0 });
  expect(await etcdctl([...tls, "get", "/secure"])).toMatchObject({ stdout: "yes\n", code: 0 });
  expect((await etcdctl([...tls, "cluster-health"])).stdout).toContain("cluster is healthy");
});

test("a client without a certificate is refused", async () => {
  const r = await etcdctl(["--ca-file", ca.caCert, "get", "/secure"]);
  expect(r.code).not.toBe(0);
  expect(r.stderr).toContain("certificate required");
});

test("a client with a certificate from another CA is refused", async () => {
  const r = await etcdctl(["--ca-file", ca.caCert, "--cert-file", other.client.cert, "--key-file", other.client.key, "get", "/secure"]);
  expect(r.code).not.toBe(0);
  // The handshake fails, so etcdctl only sees the connection end.
  expect(r.stderr).toContain("etcd cluster is unavailable");
});

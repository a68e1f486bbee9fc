// Test certificates made with openssl: a CA, a server certificate for 127.0.0.1, a client one.
import { mkdirSync } from "node:fs";
import { join } from "node:path";

export interface CertFiles {
  caCert: string;
  server: { cert: string; key: string };
  client: { cert: string; key: string };
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const p = Bun.spawn(["openssl", ...args], { cwd, stdout: "ignore", stderr: "pipe" });
  const err = await new Response(p.stderr).text();
  if ((await p.exited) !== 0) throw new Error(`openssl ${args[0]} failed: ${err}`);
}

async function issue(dir: string, name: string, cn: string, ext: string): Promise<{ cert: string; key: string }> {
  await openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${cn}`], dir);
  await Bun.write(join(dir, `${name}.ext`), ext);
  await openssl(
    ["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", `${name}.crt`, "-days", "2", "-extfile", `${name}.ext`],
    dir,
  );
  return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
}

export async function makeCA(dir: string, cn: string): Promise<CertFiles> {
  mkdirSync(dir, { recursive: true });
  await openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-subj", `/CN=${cn}`, "-days", "2"], dir);
  const server = await issue(dir, "server", "127.0.0.1", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n");
  const client = await issue(dir, "client", "client", "extendedKeyUsage=clientAuth\n");
  return { caCert: join(dir, "ca.crt"), server, client };
}

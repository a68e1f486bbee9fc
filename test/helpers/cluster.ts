// Clusters of real processes on loopback for integration tests: our binary or the real etcd.
import { join } from "node:path";
import { freePort, startEtcd, startOurs, tempDir, type Server, type ServerOptions } from "./procs.ts";
import type { CertFiles } from "./certs.ts";

export interface MemberSpec {
  name: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
}

export class TestCluster {
  readonly servers: (Server | null)[];
  /** With certificates, clients and peers talk https and each side checks the other's certificate. */
  tls: CertFiles | null = null;

  private constructor(
    readonly kind: "ours" | "etcd",
    readonly specs: MemberSpec[],
    readonly token: string,
    readonly extraArgs: string[],
  ) {
    this.servers = specs.map(() => null);
  }

  private get scheme(): string {
    return this.tls ? "https" : "http";
  }

  static async start(
    n: number,
    kind: "ours" | "etcd" = "ours",
    extraArgs: string[] = [],
    tls: CertFiles | null = null,
  ): Promise<TestCluster> {
    const dir = tempDir(`coreos-cluster-${kind}-`);
    const specs = Array.from({ length: n }, (_, i) => ({
      name: `m${i}`,
      clientPort: freePort(),
      peerPort: freePort(),
      dataDir: join(dir, `m${i}.etcd`),
    }));
    const c = new TestCluster(kind, specs, `tok-${Math.random().toString(36).slice(2)}`, extraArgs);
    c.tls = tls;
    // Together: a member reports healthy only once a quorum has elected a leader.
    await Promise.all(specs.map((_, i) => c.startMember(i)));
    return c;
  }

  get initialCluster(): string {
    return this.specs.map((s) => `${s.name}=${this.scheme}://127.0.0.1:${s.peerPort}`).join(",");
  }

  url(i: number): string {
    return `${this.scheme}://127.0.0.1:${this.specs[i]!.clientPort}`;
  }

  peerUrl(i: number): string {
    return `${this.scheme}://127.0.0.1:${this.specs[i]!.peerPort}`;
  }

  /** Client URLs of the members that run. */
  get endpoints(): string[] {
    return this.specs.flatMap((_, i) => (this.servers[i] ? [this.url(i)] : []));
  }

  options(i: number, state: "new" | "existing" = "new", initialCluster = this.initialCluster): ServerOptions {
    const s = this.specs[i]!;
    return {
      name: s.name,
      dataDir: s.dataDir,
      clientPort: s.clientPort,
      peerPort: s.peerPort,
      extraArgs: [
        "--initial-cluster", initialCluster,
        "--initial-cluster-token", this.token,
        "--initial-cluster-state", state,
        ...this.tlsArgs(i),
        ...this.extraArgs,
      ],
      ...(this.tls
        ? { readyUrl: this.url(i), readyTls: { ca: this.tls.caCert, cert: this.tls.client.cert, key: this.tls.client.key } }
        : {}),
    };
  }

  private tlsArgs(i: number): string[] {
    const t = this.tls;
    if (!t) return [];
    return [
      "--listen-client-urls", this.url(i), "--advertise-client-urls", this.url(i),
      "--listen-peer-urls", this.peerUrl(i), "--initial-advertise-peer-urls", this.peerUrl(i),
      "--cert-file", t.server.cert, "--key-file", t.server.key, "--client-cert-auth", "--trusted-ca-file", t.caCert,
      "--peer-cert-file", t.server.cert, "--peer-key-file", t.server.key, "--peer-client-cert-auth", "--peer-trusted-ca-file", t.caCert,
    ];
  }

  async startMember(i: number, state: "new" | "existing" = "new", initialCluster?: string): Promise<Server> {
    const o = this.options(i, state, initialCluster);
    const s = this.kind === "ours" ? await startOurs(o) : await startEtcd(o);
    this.servers[i] = s;
    return s;
  }

  /** Adds a spec for a member that is not started yet (for `member add`). */
  addSpec(dir: string): number {
    this.specs.push({ name: `m${this.specs.length}`, clientPort: freePort(), peerPort: freePort(), dataDir: join(dir, `m${this.specs.length}.etcd`) });
    this.servers.push(null);
    return this.specs.length - 1;
  }

  /** fetch options that get a client through the members' certificate check. */
  fetchTls(): RequestInit {
    const t = this.tls;
    if (!t) return {};
    return { tls: { ca: Bun.file(t.caCert), cert: Bun.file(t.client.cert), key: Bun.file(t.client.key) } } as RequestInit;
  }

  async kill(i: number): Promise<void> {
    await this.servers[i]?.kill();
    this.servers[i] = null;
  }

  async stop(i: number): Promise<void> {
    await this.servers[i]?.stop();
    this.servers[i] = null;
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.servers.map((s) => s?.kill()));
  }

  /** Index of the member that leads, as the running members see it; waits (bounded) for one. */
  async leader(ms = 20_000): Promise<number> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      for (let i = 0; i < this.specs.length; i++) {
        if (!this.servers[i]) continue;
        try {
          const r = await fetch(`${this.url(i)}/v2/stats/self`, { signal: AbortSignal.timeout(1000), ...this.fetchTls() });
          const self = (await r.json()) as { state: string };
          if (self.state === "StateLeader") return i;
        } catch {
          // not answering: try the next
        }
      }
      await Bun.sleep(50);
    }
    throw new Error(`no leader within ${ms} ms`);
  }
}

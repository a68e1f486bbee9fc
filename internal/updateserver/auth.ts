// Admin tokens: random bearer secrets, only their SHA-256 is stored. The first start creates one and
// prints it once; later ones are made through the API by a holder of a token.
import type { Database } from "bun:sqlite";
import { notFound } from "./errors.ts";
import type { Clock } from "./policy.ts";

export interface TokenInfo {
  id: string;
  name: string;
  createdAt: number;
}

const PREFIX = "cu_";

function hashToken(token: string): string {
  return new Bun.CryptoHasher("sha256").update(token).digest("hex");
}

export class Tokens {
  /** Hashes of the valid tokens; the table is tiny and read on every admin request. */
  private hashes = new Set<string>();

  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
  ) {
    this.reload();
  }

  private reload(): void {
    this.hashes = new Set((this.db.query("SELECT hash FROM token").all() as { hash: string }[]).map((r) => r.hash));
  }

  get empty(): boolean {
    return this.hashes.size === 0;
  }

  /** Creates a token and returns its secret, which is never stored nor shown again. */
  create(name: string): { token: string; info: TokenInfo } {
    const token = PREFIX + Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url");
    const info = { id: crypto.randomUUID(), name, createdAt: this.clock() };
    this.db.query("INSERT INTO token (id, name, hash, created_at) VALUES (?, ?, ?, ?)").run(info.id, name, hashToken(token), info.createdAt);
    this.reload();
    return { token, info };
  }

  list(): TokenInfo[] {
    return this.db.query("SELECT id, name, created_at AS createdAt FROM token ORDER BY created_at").all() as TokenInfo[];
  }

  revoke(id: string): void {
    if (this.db.query("DELETE FROM token WHERE id = ?").run(id).changes === 0) throw notFound(`token "${id}"`);
    this.reload();
  }

  valid(token: string | null | undefined): boolean {
    return !!token && token.startsWith(PREFIX) && this.hashes.has(hashToken(token));
  }
}

/** The secret from `Authorization: Bearer <token>`, or null. */
export function bearer(header: string | null | undefined): string | null {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  return m ? m[1]! : null;
}

// The update server's SQLite database (bun:sqlite) in the data dir, in WAL mode with
// synchronous=NORMAL: a commit is in the WAL file when it returns, and the WAL is fsynced before
// every checkpoint, so the database is consistent after any crash. The Omaha handler answers only
// after its transaction committed (commit.ts); how far an answer holds is the durability setting:
//   "power":   (the default) it survives a power loss too: after each group commit the WAL is
//              fdatasync'ed (WalSync) on a libuv thread and the batch is answered when that
//              returns. The event loop goes on with the next batch meanwhile, which
//              synchronous=FULL (an fsync inside COMMIT, blocking the loop) would not allow.
//   "process": it survives kill -9 and any crash of the server; a power loss can take the last
//              moments with it.
import { Database } from "bun:sqlite";
import { open, type FileHandle } from "node:fs/promises";

export type Durability = "process" | "power";
export const DURABILITIES: readonly Durability[] = ["process", "power"];

const SCHEMA_VERSION = 1;

const SCHEMA = `
CREATE TABLE app (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  description TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL
);
CREATE TABLE package (
  id TEXT PRIMARY KEY,
  app_id TEXT NOT NULL REFERENCES app(id) ON DELETE CASCADE,
  version TEXT NOT NULL,
  arch TEXT NOT NULL,
  filename TEXT NOT NULL,
  url TEXT NOT NULL,
  size INTEGER NOT NULL,
  hash_sha1 TEXT NOT NULL,
  hash_sha256 TEXT NOT NULL,
  hosted INTEGER NOT NULL,
  extra_files TEXT NOT NULL DEFAULT '[]',
  created_at INTEGER NOT NULL,
  UNIQUE (app_id, version, arch)
);
CREATE TABLE channel (
  id TEXT PRIMARY KEY,
  app_id TEXT NOT NULL REFERENCES app(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  arch TEXT NOT NULL,
  color TEXT NOT NULL DEFAULT '#777777',
  package_id TEXT REFERENCES package(id) ON DELETE SET NULL,
  created_at INTEGER NOT NULL,
  UNIQUE (app_id, name, arch)
);
CREATE TABLE grp (
  id TEXT PRIMARY KEY,
  app_id TEXT NOT NULL REFERENCES app(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  track TEXT NOT NULL,
  channel_id TEXT REFERENCES channel(id) ON DELETE SET NULL,
  updates_enabled INTEGER NOT NULL,
  safe_mode INTEGER NOT NULL,
  office_hours INTEGER NOT NULL,
  timezone TEXT NOT NULL,
  period_seconds INTEGER NOT NULL,
  max_updates_per_period INTEGER NOT NULL,
  update_timeout_seconds INTEGER NOT NULL,
  rollout_in_progress INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  UNIQUE (app_id, name)
);
CREATE TABLE instance (
  id TEXT PRIMARY KEY,
  ip TEXT NOT NULL DEFAULT '',
  alias TEXT NOT NULL DEFAULT '',
  oem TEXT NOT NULL DEFAULT '',
  oem_version TEXT NOT NULL DEFAULT '',
  aleph_version TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL
);
CREATE TABLE instance_app (
  instance_id TEXT NOT NULL REFERENCES instance(id) ON DELETE CASCADE,
  app_id TEXT NOT NULL REFERENCES app(id) ON DELETE CASCADE,
  group_id TEXT NOT NULL,
  version TEXT NOT NULL,
  status INTEGER NOT NULL,
  last_check INTEGER NOT NULL,
  last_update_granted_ts INTEGER,
  last_update_version TEXT,
  update_in_progress INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (instance_id, app_id)
) WITHOUT ROWID;
CREATE INDEX instance_app_group ON instance_app (group_id, last_update_granted_ts);
CREATE INDEX instance_app_group_version ON instance_app (group_id, version);
CREATE TABLE status_history (
  id INTEGER PRIMARY KEY,
  instance_id TEXT NOT NULL,
  app_id TEXT NOT NULL,
  group_id TEXT NOT NULL,
  status INTEGER NOT NULL,
  version TEXT NOT NULL,
  error_code INTEGER,
  created_at INTEGER NOT NULL
);
CREATE INDEX status_history_instance ON status_history (instance_id, app_id, id);
CREATE TABLE event (
  id INTEGER PRIMARY KEY,
  instance_id TEXT NOT NULL,
  app_id TEXT NOT NULL,
  group_id TEXT NOT NULL,
  type INTEGER NOT NULL,
  result INTEGER NOT NULL,
  error_code INTEGER,
  previous_version TEXT,
  version TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX event_instance ON event (instance_id, id);
CREATE TABLE activity (
  id INTEGER PRIMARY KEY,
  app_id TEXT NOT NULL,
  group_id TEXT,
  channel_id TEXT,
  instance_id TEXT,
  version TEXT NOT NULL DEFAULT '',
  class INTEGER NOT NULL,
  severity INTEGER NOT NULL,
  message TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX activity_time ON activity (created_at);
CREATE INDEX activity_group ON activity (group_id, version, class);
CREATE TABLE token (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  hash TEXT NOT NULL UNIQUE,
  created_at INTEGER NOT NULL
);
`;

export function openDatabase(file: string): Database {
  const db = new Database(file, { create: true, strict: true });
  db.exec("PRAGMA journal_mode = WAL");
  db.exec("PRAGMA synchronous = NORMAL");
  db.exec("PRAGMA foreign_keys = ON");
  db.exec("PRAGMA busy_timeout = 5000");
  // Bigger checkpoints: fewer stalls on the hot path, the WAL stays a few MiB.
  db.exec("PRAGMA wal_autocheckpoint = 4000");
  const v = (db.query("PRAGMA user_version").get() as { user_version: number }).user_version;
  if (v === 0) {
    db.transaction(() => {
      db.exec(SCHEMA);
      db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
    })();
  } else if (v !== SCHEMA_VERSION) {
    db.close();
    throw new Error(`${file}: database schema version ${v} is not ${SCHEMA_VERSION} (written by another release)`);
  }
  return db;
}

/** fdatasync of a database's WAL file, off the event loop. */
export class WalSync {
  private handle: FileHandle | null = null;

  constructor(private readonly walPath: string) {}

  async sync(): Promise<void> {
    // The WAL file exists from the first commit on and is kept (never deleted) while the database is open.
    this.handle ??= await open(this.walPath, "r");
    await this.handle.datasync();
  }

  async close(): Promise<void> {
    await this.handle?.close();
    this.handle = null;
  }
}

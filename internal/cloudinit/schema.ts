// The cloud-config schema as coreos-cloudinit's Go structs declare it: one table that the
// validator (types, `valid` regexes, deprecations), the reader (config.ts) and the generated
// environment files (env.ts) all read, so a key cannot be known to one and missing in another.

export type ScalarKind = "string" | "int" | "float64" | "bool";

export type Field =
  | { kind: ScalarKind; env?: string; valid?: RegExp; deprecated?: string }
  | { kind: "struct"; fields: Record<string, Field>; deprecated?: string }
  | { kind: "slice"; elem: Field; deprecated?: string };

export type StructField = Extract<Field, { kind: "struct" }>;

/** Go's reflect kind names, as the validator's "(want …)" prints them. */
export function humanType(f: Field): string {
  return f.kind === "slice" ? `[]${humanType(f.elem)}` : f.kind;
}

const str = (env?: string, extra: { valid?: RegExp; deprecated?: string } = {}): Field => ({ kind: "string", env, ...extra });
const int = (env?: string, extra: { deprecated?: string } = {}): Field => ({ kind: "int", env, ...extra });
const float = (env?: string): Field => ({ kind: "float64", env });
const bool = (env?: string, extra: { deprecated?: string } = {}): Field => ({ kind: "bool", env, ...extra });
const struct = (fields: Record<string, Field>, deprecated?: string): StructField => ({ kind: "struct", fields, deprecated });
const slice = (elem: Field, deprecated?: string): Field => ({ kind: "slice", elem, deprecated });

/** Go's `(?i:sun|mon|…)` spelled for JavaScript, which has no inline case-insensitive group. */
const DAY = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
  .map((d) => [...d].map((c) => `[${c}${c.toUpperCase()}]`).join(""))
  .join("|");
export const WINDOW_START = new RegExp(`^((${DAY}) )?0*([0-9]|1[0-9]|2[0-3]):0*([0-9]|[1-5][0-9])$`);
export const GO_DURATION = /^[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+$/;
export const ENCODING = /^(base64|b64|gz|gzip|gz\+base64|gzip\+base64|gz\+b64|gzip\+b64)$/;
export const PERMISSIONS = /^0?[0-7]{3,4}$/;
export const UNIT_COMMAND = /^(start|stop|restart|reload|try-restart|reload-or-restart|reload-or-try-restart)$/;

const E2 = "etcd2 options no longer work for etcd";

const etcd = struct(
  {
    addr: str("ETCD_ADDR"),
    advertise_client_urls: str("ETCD_ADVERTISE_CLIENT_URLS", { deprecated: E2 }),
    bind_addr: str("ETCD_BIND_ADDR"),
    ca_file: str("ETCD_CA_FILE"),
    cert_file: str("ETCD_CERT_FILE"),
    cluster_active_size: int("ETCD_CLUSTER_ACTIVE_SIZE"),
    cluster_remove_delay: float("ETCD_CLUSTER_REMOVE_DELAY"),
    cluster_sync_interval: float("ETCD_CLUSTER_SYNC_INTERVAL"),
    cors: str("ETCD_CORS"),
    data_dir: str("ETCD_DATA_DIR"),
    discovery: str("ETCD_DISCOVERY"),
    discovery_fallback: str("ETCD_DISCOVERY_FALLBACK", { deprecated: E2 }),
    discovery_srv: str("ETCD_DISCOVERY_SRV", { deprecated: E2 }),
    discovery_proxy: str("ETCD_DISCOVERY_PROXY", { deprecated: E2 }),
    election_timeout: int("ETCD_ELECTION_TIMEOUT", { deprecated: E2 }),
    force_new_cluster: bool("ETCD_FORCE_NEW_CLUSTER", { deprecated: E2 }),
    graphite_host: str("ETCD_GRAPHITE_HOST"),
    heartbeat_interval: int("ETCD_HEARTBEAT_INTERVAL", { deprecated: E2 }),
    http_read_timeout: float("ETCD_HTTP_READ_TIMEOUT"),
    http_write_timeout: float("ETCD_HTTP_WRITE_TIMEOUT"),
    initial_advertise_peer_urls: str("ETCD_INITIAL_ADVERTISE_PEER_URLS", { deprecated: E2 }),
    initial_cluster: str("ETCD_INITIAL_CLUSTER", { deprecated: E2 }),
    initial_cluster_state: str("ETCD_INITIAL_CLUSTER_STATE", { deprecated: E2 }),
    initial_cluster_token: str("ETCD_INITIAL_CLUSTER_TOKEN", { deprecated: E2 }),
    key_file: str("ETCD_KEY_FILE"),
    listen_client_urls: str("ETCD_LISTEN_CLIENT_URLS", { deprecated: E2 }),
    listen_peer_urls: str("ETCD_LISTEN_PEER_URLS", { deprecated: E2 }),
    max_result_buffer: int("ETCD_MAX_RESULT_BUFFER"),
    max_retry_attempts: int("ETCD_MAX_RETRY_ATTEMPTS"),
    max_snapshots: int("ETCD_MAX_SNAPSHOTS", { deprecated: E2 }),
    max_wals: int("ETCD_MAX_WALS", { deprecated: E2 }),
    name: str("ETCD_NAME"),
    peer_addr: str("ETCD_PEER_ADDR"),
    peer_bind_addr: str("ETCD_PEER_BIND_ADDR"),
    peer_ca_file: str("ETCD_PEER_CA_FILE"),
    peer_cert_file: str("ETCD_PEER_CERT_FILE"),
    peer_election_timeout: int("ETCD_PEER_ELECTION_TIMEOUT"),
    peer_heartbeat_interval: int("ETCD_PEER_HEARTBEAT_INTERVAL"),
    peer_key_file: str("ETCD_PEER_KEY_FILE"),
    peers: str("ETCD_PEERS"),
    peers_file: str("ETCD_PEERS_FILE"),
    proxy: str("ETCD_PROXY", { deprecated: E2 }),
    retry_interval: float("ETCD_RETRY_INTERVAL"),
    snapshot: bool("ETCD_SNAPSHOT"),
    snapshot_count: int("ETCD_SNAPSHOTCOUNT"),
    trace: str("ETCD_TRACE"),
    verbose: bool("ETCD_VERBOSE"),
    very_verbose: bool("ETCD_VERY_VERBOSE"),
    very_very_verbose: bool("ETCD_VERY_VERY_VERBOSE"),
  },
  "etcd is no longer shipped in Container Linux",
);

const etcd2 = struct(
  {
    advertise_client_urls: str("ETCD_ADVERTISE_CLIENT_URLS"),
    ca_file: str("ETCD_CA_FILE", { deprecated: "ca_file obsoleted by trusted_ca_file and client_cert_auth" }),
    cert_file: str("ETCD_CERT_FILE"),
    client_cert_auth: bool("ETCD_CLIENT_CERT_AUTH"),
    cors: str("ETCD_CORS"),
    data_dir: str("ETCD_DATA_DIR"),
    debug: bool("ETCD_DEBUG"),
    discovery: str("ETCD_DISCOVERY"),
    discovery_fallback: str("ETCD_DISCOVERY_FALLBACK"),
    discovery_srv: str("ETCD_DISCOVERY_SRV"),
    discovery_proxy: str("ETCD_DISCOVERY_PROXY"),
    election_timeout: int("ETCD_ELECTION_TIMEOUT"),
    enable_pprof: bool("ETCD_ENABLE_PPROF"),
    force_new_cluster: bool("ETCD_FORCE_NEW_CLUSTER"),
    heartbeat_interval: int("ETCD_HEARTBEAT_INTERVAL"),
    initial_advertise_peer_urls: str("ETCD_INITIAL_ADVERTISE_PEER_URLS"),
    initial_cluster: str("ETCD_INITIAL_CLUSTER"),
    initial_cluster_state: str("ETCD_INITIAL_CLUSTER_STATE"),
    initial_cluster_token: str("ETCD_INITIAL_CLUSTER_TOKEN"),
    key_file: str("ETCD_KEY_FILE"),
    listen_client_urls: str("ETCD_LISTEN_CLIENT_URLS"),
    listen_peer_urls: str("ETCD_LISTEN_PEER_URLS"),
    log_package_levels: str("ETCD_LOG_PACKAGE_LEVELS"),
    max_snapshots: int("ETCD_MAX_SNAPSHOTS"),
    max_wals: int("ETCD_MAX_WALS"),
    name: str("ETCD_NAME"),
    peer_ca_file: str("ETCD_PEER_CA_FILE", { deprecated: "peer_ca_file obsoleted peer_trusted_ca_file and peer_client_cert_auth" }),
    peer_cert_file: str("ETCD_PEER_CERT_FILE"),
    peer_key_file: str("ETCD_PEER_KEY_FILE"),
    peer_client_cert_auth: bool("ETCD_PEER_CLIENT_CERT_AUTH"),
    peer_trusted_ca_file: str("ETCD_PEER_TRUSTED_CA_FILE"),
    proxy: str("ETCD_PROXY", { valid: /^(on|off|readonly)$/ }),
    proxy_dial_timeout: int("ETCD_PROXY_DIAL_TIMEOUT"),
    proxy_failure_wait: int("ETCD_PROXY_FAILURE_WAIT"),
    proxy_read_timeout: int("ETCD_PROXY_READ_TIMEOUT"),
    proxy_refresh_interval: int("ETCD_PROXY_REFRESH_INTERVAL"),
    proxy_write_timeout: int("ETCD_PROXY_WRITE_TIMEOUT"),
    snapshot_count: int("ETCD_SNAPSHOT_COUNT"),
    strict_reconfig_check: bool("ETCD_STRICT_RECONFIG_CHECK"),
    trusted_ca_file: str("ETCD_TRUSTED_CA_FILE"),
    wal_dir: str("ETCD_WAL_DIR"),
  },
  "etcd2 is no longer shipped in Container Linux",
);

const flannel = struct({
  etcd_endpoints: str("FLANNELD_ETCD_ENDPOINTS"),
  etcd_cafile: str("FLANNELD_ETCD_CAFILE"),
  etcd_certfile: str("FLANNELD_ETCD_CERTFILE"),
  etcd_keyfile: str("FLANNELD_ETCD_KEYFILE"),
  etcd_prefix: str("FLANNELD_ETCD_PREFIX"),
  etcd_username: str("FLANNELD_ETCD_USERNAME"),
  etcd_password: str("FLANNELD_ETCD_PASSWORD"),
  ip_masq: str("FLANNELD_IP_MASQ"),
  subnet_file: str("FLANNELD_SUBNET_FILE"),
  interface: str("FLANNELD_IFACE"),
  public_ip: str("FLANNELD_PUBLIC_IP"),
});

const fleet = struct(
  {
    agent_ttl: str("FLEET_AGENT_TTL"),
    authorized_keys_file: str("FLEET_AUTHORIZED_KEYS_FILE"),
    disable_engine: bool("FLEET_DISABLE_ENGINE"),
    engine_reconcile_interval: float("FLEET_ENGINE_RECONCILE_INTERVAL"),
    etcd_cafile: str("FLEET_ETCD_CAFILE"),
    etcd_certfile: str("FLEET_ETCD_CERTFILE"),
    etcd_keyfile: str("FLEET_ETCD_KEYFILE"),
    etcd_key_prefix: str("FLEET_ETCD_KEY_PREFIX"),
    etcd_request_timeout: float("FLEET_ETCD_REQUEST_TIMEOUT"),
    etcd_servers: str("FLEET_ETCD_SERVERS"),
    etcd_username: str("FLEET_ETCD_USERNAME"),
    etcd_password: str("FLEET_ETCD_PASSWORD"),
    metadata: str("FLEET_METADATA"),
    public_ip: str("FLEET_PUBLIC_IP"),
    token_limit: int("FLEET_TOKEN_LIMIT"),
    verbosity: int("FLEET_VERBOSITY"),
    verify_units: bool("FLEET_VERIFY_UNITS"),
  },
  "fleet is no longer shipped in Container Linux",
);

// `max` is ours: locksmithd reads LOCKSMITHD_MAX as its --max flag (the semaphore's size at start).
const locksmith = struct({
  endpoint: str("LOCKSMITHD_ENDPOINT"),
  etcd_cafile: str("LOCKSMITHD_ETCD_CAFILE"),
  etcd_certfile: str("LOCKSMITHD_ETCD_CERTFILE"),
  etcd_keyfile: str("LOCKSMITHD_ETCD_KEYFILE"),
  etcd_username: str("LOCKSMITHD_ETCD_USERNAME"),
  etcd_password: str("LOCKSMITHD_ETCD_PASSWORD"),
  group: str("LOCKSMITHD_GROUP"),
  window_start: str("REBOOT_WINDOW_START", { valid: WINDOW_START }),
  window_length: str("REBOOT_WINDOW_LENGTH", { valid: GO_DURATION }),
  max: int("LOCKSMITHD_MAX"),
});

const oem = struct({ id: str(), name: str(), version_id: str(), home_url: str(), bug_report_url: str() });

const update = struct({
  reboot_strategy: str("REBOOT_STRATEGY", { valid: /^(reboot|etcd-lock|off)$/ }),
  group: str("GROUP"),
  server: str("SERVER"),
});

const unit = struct({
  name: str(),
  mask: bool(),
  enable: bool(),
  runtime: bool(),
  content: str(),
  command: str(undefined, { valid: UNIT_COMMAND }),
  drop_ins: slice(struct({ name: str(), content: str() })),
});

const REMOTE = "trying to fetch from a remote endpoint introduces too many intermittent errors";

const user = struct({
  name: str(),
  passwd: str(),
  ssh_authorized_keys: slice(str()),
  coreos_ssh_import_github: str(undefined, { deprecated: REMOTE }),
  coreos_ssh_import_github_users: slice(str(), REMOTE),
  coreos_ssh_import_url: str(undefined, { deprecated: REMOTE }),
  gecos: str(),
  homedir: str(),
  no_create_home: bool(),
  primary_group: str(),
  groups: slice(str()),
  no_user_group: bool(),
  system: bool(),
  no_log_init: bool(),
  shell: str(),
});

const file = struct({
  encoding: str(undefined, { valid: ENCODING }),
  content: str(),
  owner: str(),
  path: str(),
  permissions: str(undefined, { valid: PERMISSIONS }),
});

export const SCHEMA = struct({
  ssh_authorized_keys: slice(str()),
  coreos: struct({ etcd, etcd2, flannel, fleet, locksmith, oem, update, units: slice(unit) }),
  write_files: slice(file),
  hostname: str(),
  users: slice(user),
  manage_etc_hosts: str(),
});

/** The env-carrying sections of `coreos:` whose settings become a unit drop-in. */
export const DROP_IN_SECTIONS = { etcd: "etcd.service", etcd2: "etcd2.service", fleet: "fleet.service", locksmith: "locksmithd.service" } as const;

export function section(name: "etcd" | "etcd2" | "fleet" | "locksmith" | "flannel" | "update"): StructField {
  const coreos = SCHEMA.fields.coreos as StructField;
  return coreos.fields[name] as StructField;
}

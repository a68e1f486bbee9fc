// What etcdctl v2 accepts: global flags, commands, their flags and help strings, as etcd 3.4's
// ctlv2 declares them (the strings are what `etcdctl --help` prints).
import type { FlagDef } from "./goflag.ts";
import { ETCD_VERSION } from "../kv/version.ts";

/** etcdctl reports the etcd release whose v2 tool it reproduces (scripts parse this). */
export const CTL_VERSION = ETCD_VERSION;

export const DEFAULT_ENDPOINTS = "http://127.0.0.1:2379,http://127.0.0.1:4001";

export const GLOBAL_FLAGS: FlagDef[] = [
  { names: ["debug"], kind: "bool", usage: "output cURL commands which can be used to reproduce the request" },
  { names: ["no-sync"], kind: "bool", usage: "don't synchronize cluster information before sending request" },
  {
    names: ["output", "o"],
    kind: "string",
    usage: "output response in the given format (`simple`, `extended` or `json`)",
    defaultValue: "simple",
  },
  { names: ["discovery-srv", "D"], kind: "string", usage: "domain name to query for SRV records describing cluster endpoints" },
  { names: ["insecure-discovery"], kind: "bool", usage: "accept insecure SRV records describing cluster endpoints" },
  { names: ["peers", "C"], kind: "string", usage: 'DEPRECATED - "--endpoints" should be used instead' },
  { names: ["endpoint"], kind: "string", usage: 'DEPRECATED - "--endpoints" should be used instead' },
  {
    names: ["endpoints"],
    kind: "string",
    usage: `a comma-delimited list of machine addresses in the cluster (default: "${DEFAULT_ENDPOINTS}")`,
  },
  { names: ["cert-file"], kind: "string", usage: "identify HTTPS client using this SSL certificate file" },
  { names: ["key-file"], kind: "string", usage: "identify HTTPS client using this SSL key file" },
  { names: ["ca-file"], kind: "string", usage: "verify certificates of HTTPS-enabled servers using this CA bundle" },
  { names: ["username", "u"], kind: "string", usage: "provide username[:password] and prompt if password is not supplied." },
  { names: ["timeout"], kind: "duration", usage: "connection timeout per request", defaultValue: 2000 },
  { names: ["total-timeout"], kind: "duration", usage: "timeout for the command execution (except watch)", defaultValue: 5000 },
];

export const VERSION_FLAG: FlagDef = { names: ["version", "v"], kind: "bool", usage: "print the version" };

const ttl: FlagDef = { names: ["ttl"], kind: "int", usage: "key time-to-live in seconds", defaultValue: 0 };
const quorum: FlagDef = { names: ["quorum", "q"], kind: "bool", usage: "require quorum for get request" };
const sort: FlagDef = { names: ["sort"], kind: "bool", usage: "returns result in sorted order" };
const afterIndex: FlagDef = { names: ["after-index"], kind: "int", usage: "watch after the given index", defaultValue: 0 };

export interface CommandSpec {
  name: string;
  usage: string;
  argsUsage: string;
  description?: string;
  flags: FlagDef[];
}

export const COMMANDS: CommandSpec[] = [
  {
    name: "cluster-health",
    usage: "check the health of the etcd cluster",
    argsUsage: " ",
    flags: [{ names: ["forever", "f"], kind: "bool", usage: "forever check the health every 10 second until CTRL+C" }],
  },
  {
    name: "mk",
    usage: "make a new key with a given value",
    argsUsage: "<key> <value>",
    flags: [{ names: ["in-order"], kind: "bool", usage: "create in-order key under directory <key>" }, ttl],
  },
  { name: "mkdir", usage: "make a new directory", argsUsage: "<key>", flags: [ttl] },
  {
    name: "rm",
    usage: "remove a key or a directory",
    argsUsage: "<key>",
    flags: [
      { names: ["dir"], kind: "bool", usage: "removes the key if it is an empty directory or a key-value pair" },
      { names: ["recursive", "r"], kind: "bool", usage: "removes the key and all child keys(if it is a directory)" },
      { names: ["with-value"], kind: "string", usage: "previous value" },
      { names: ["with-index"], kind: "int", usage: "previous index", defaultValue: 0 },
    ],
  },
  { name: "rmdir", usage: "removes the key if it is an empty directory or a key-value pair", argsUsage: "<key>", flags: [] },
  { name: "get", usage: "retrieve the value of a key", argsUsage: "<key>", flags: [sort, quorum] },
  {
    name: "ls",
    usage: "retrieve a directory",
    argsUsage: "[key]",
    flags: [
      sort,
      { names: ["recursive", "r"], kind: "bool", usage: "returns all key names recursively for the given path" },
      { names: ["p"], kind: "bool", usage: "append slash (/) to directories" },
      quorum,
    ],
  },
  {
    name: "set",
    usage: "set the value of a key",
    argsUsage: "<key> <value>",
    description: `Set sets the value of a key.

   When <value> begins with '-', <value> is interpreted as a flag.
   Insert '--' for workaround:

   $ set -- <key> <value>`,
    flags: [
      ttl,
      { names: ["swap-with-value"], kind: "string", usage: "previous value" },
      { names: ["swap-with-index"], kind: "int", usage: "previous index", defaultValue: 0 },
    ],
  },
  { name: "setdir", usage: "create a new directory or update an existing directory TTL", argsUsage: "<key>", flags: [ttl] },
  { name: "update", usage: "update an existing key with a given value", argsUsage: "<key> <value>", flags: [ttl] },
  { name: "updatedir", usage: "update an existing directory", argsUsage: "<key> <value>", flags: [ttl] },
  {
    name: "watch",
    usage: "watch a key for changes",
    argsUsage: "<key>",
    flags: [
      { names: ["forever", "f"], kind: "bool", usage: "forever watch a key until CTRL+C" },
      afterIndex,
      { names: ["recursive", "r"], kind: "bool", usage: "returns all values for key and child keys" },
    ],
  },
  {
    name: "exec-watch",
    usage: "watch a key for changes and exec an executable",
    argsUsage: "<key> <command> [args...]",
    flags: [afterIndex, { names: ["recursive", "r"], kind: "bool", usage: "watch all values for key and child keys" }],
  },
  { name: "member", usage: "member add, remove and list subcommands", argsUsage: "", flags: [] },
];

export const MEMBER_COMMANDS: CommandSpec[] = [
  { name: "list", usage: "enumerate existing cluster members", argsUsage: " ", flags: [] },
  { name: "add", usage: "add a new member to the etcd cluster", argsUsage: "<name> <peerURL>", flags: [] },
  { name: "remove", usage: "remove an existing member from the etcd cluster", argsUsage: "<memberID>", flags: [] },
  { name: "update", usage: "update an existing member in the etcd cluster", argsUsage: "<memberID> <peerURLs>", flags: [] },
];

export const HELP_COMMAND = { names: ["help", "h"], usage: "Shows a list of commands or help for one command" };

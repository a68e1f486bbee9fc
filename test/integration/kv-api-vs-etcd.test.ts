// Differential test: the same v2 API requests against the real etcd and our server, with the
// answers compared after shifting indexes by each server's starting index (etcd spends a few
// indexes on internal writes at boot) and blurring clock-dependent TTL fields.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startEtcd, startOurs, type Server } from "../helpers/procs.ts";

interface Step {
  name: string;
  method: string;
  /**
   * Path under the server root; `{i:N}` becomes the server's base index + N, `{next}` the index
   * after the previous answer's X-Etcd-Index (a watch that must not miss an event under load).
   */
  path: string;
  body?: string;
  /** The X-Etcd-Index of a watch depends on whether the event came before it: not compared. */
  racy?: boolean;
}

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: unknown;
}

const steps: Step[] = [
  { name: "set new", method: "PUT", path: "/v2/keys/t/k1", body: "value=v1" },
  { name: "set replace", method: "PUT", path: "/v2/keys/t/k1", body: "value=v2" },
  { name: "get", method: "GET", path: "/v2/keys/t/k1" },
  { name: "cas ok", method: "PUT", path: "/v2/keys/t/k1", body: "prevValue=v2&value=v3" },
  { name: "cas bad value", method: "PUT", path: "/v2/keys/t/k1", body: "prevValue=zz&value=v4" },
  { name: "cas bad index", method: "PUT", path: "/v2/keys/t/k1", body: "prevIndex=1&value=v4" },
  { name: "cas both bad", method: "PUT", path: "/v2/keys/t/k1", body: "prevValue=zz&prevIndex=1&value=v4" },
  { name: "cas index ok", method: "PUT", path: "/v2/keys/t/k1?prevIndex={i:3}", body: "value=v5" },
  { name: "create exists", method: "PUT", path: "/v2/keys/t/k1", body: "prevExist=false&value=x" },
  { name: "create ignores prevValue", method: "PUT", path: "/v2/keys/t/c1", body: "prevExist=false&prevValue=nope&value=x" },
  { name: "update missing", method: "PUT", path: "/v2/keys/t/none", body: "prevExist=true&value=x" },
  { name: "update", method: "PUT", path: "/v2/keys/t/k1", body: "prevExist=true&value=u" },
  { name: "cas with prevExist", method: "PUT", path: "/v2/keys/t/k1", body: "prevExist=true&prevValue=u&value=u2" },
  { name: "post 1", method: "POST", path: "/v2/keys/q", body: "value=job1" },
  { name: "post 2", method: "POST", path: "/v2/keys/q", body: "value=job2" },
  { name: "post dir", method: "POST", path: "/v2/keys/q", body: "dir=true" },
  { name: "list q sorted", method: "GET", path: "/v2/keys/q?sorted=true" },
  { name: "mkdir", method: "PUT", path: "/v2/keys/d1", body: "dir=true" },
  { name: "mkdir again", method: "PUT", path: "/v2/keys/d1", body: "dir=true" },
  { name: "set onto dir", method: "PUT", path: "/v2/keys/d1", body: "value=x" },
  { name: "set in dir", method: "PUT", path: "/v2/keys/d1/k", body: "value=x" },
  { name: "set in nested new dirs", method: "PUT", path: "/v2/keys/d1/a/b/c", body: "value=deep" },
  { name: "get dir", method: "GET", path: "/v2/keys/d1?sorted=true" },
  { name: "get dir recursive", method: "GET", path: "/v2/keys/d1?recursive=true&sorted=true" },
  { name: "delete dir without dir", method: "DELETE", path: "/v2/keys/d1" },
  { name: "delete nonempty dir", method: "DELETE", path: "/v2/keys/d1?dir=true" },
  { name: "delete dir body ignored", method: "DELETE", path: "/v2/keys/d1", body: "recursive=true" },
  { name: "delete dir recursive", method: "DELETE", path: "/v2/keys/d1?recursive=true" },
  { name: "delete empty dir", method: "PUT", path: "/v2/keys/d2", body: "dir=true" },
  { name: "delete empty dir 2", method: "DELETE", path: "/v2/keys/d2?dir=true" },
  { name: "cad bad", method: "DELETE", path: "/v2/keys/t/k1?prevValue=zz" },
  { name: "cad ok", method: "DELETE", path: "/v2/keys/t/k1?prevValue=u2" },
  { name: "cad missing", method: "DELETE", path: "/v2/keys/t/k1?prevIndex=5" },
  { name: "delete missing", method: "DELETE", path: "/v2/keys/t/k1" },
  { name: "get missing nested", method: "GET", path: "/v2/keys/zz/yy" },
  { name: "set key", method: "PUT", path: "/v2/keys/t/k2", body: "value=a" },
  { name: "get through key", method: "GET", path: "/v2/keys/t/k2/x" },
  { name: "set through key", method: "PUT", path: "/v2/keys/t/k2/x", body: "value=a" },
  { name: "post through key", method: "POST", path: "/v2/keys/t/k2", body: "value=a" },
  { name: "dir over key", method: "PUT", path: "/v2/keys/t/k2", body: "dir=true" },
  { name: "update dir with value", method: "PUT", path: "/v2/keys/t/k2", body: "prevExist=true&value=zz" },
  { name: "cas on dir", method: "PUT", path: "/v2/keys/t/k2", body: "prevValue=a&value=zz" },
  { name: "root set", method: "PUT", path: "/v2/keys/", body: "value=x" },
  { name: "root delete", method: "DELETE", path: "/v2/keys/?recursive=true" },
  { name: "trailing slash", method: "PUT", path: "/v2/keys/e/k/", body: "value=slash" },
  { name: "empty value", method: "PUT", path: "/v2/keys/e/empty", body: "" },
  { name: "hidden set", method: "PUT", path: "/v2/keys/h/_hidden", body: "value=1" },
  { name: "visible set", method: "PUT", path: "/v2/keys/h/vis", body: "value=2" },
  { name: "hidden dir", method: "PUT", path: "/v2/keys/h/_hd/x", body: "value=3" },
  { name: "list hides", method: "GET", path: "/v2/keys/h?recursive=true&sorted=true" },
  { name: "get hidden directly", method: "GET", path: "/v2/keys/h/_hidden" },
  { name: "only hidden children", method: "PUT", path: "/v2/keys/oh/_x", body: "value=1" },
  { name: "list only hidden", method: "GET", path: "/v2/keys/oh" },
  { name: "ttl nan", method: "PUT", path: "/v2/keys/p", body: "value=1&ttl=abc" },
  { name: "ttl negative", method: "PUT", path: "/v2/keys/p", body: "value=1&ttl=-1" },
  { name: "prevIndex nan", method: "PUT", path: "/v2/keys/p", body: "value=1&prevIndex=x" },
  { name: "waitIndex nan", method: "GET", path: "/v2/keys/p?wait=true&waitIndex=x" },
  { name: "bad bool", method: "GET", path: "/v2/keys/p?recursive=maybe" },
  { name: "go bool spelling", method: "GET", path: "/v2/keys/h?recursive=T&sorted=1" },
  { name: "empty prevValue", method: "PUT", path: "/v2/keys/p", body: "value=1&prevValue=" },
  { name: "refresh without ttl", method: "PUT", path: "/v2/keys/p", body: "refresh=true" },
  { name: "refresh with value", method: "PUT", path: "/v2/keys/p", body: "refresh=true&ttl=5&value=x" },
  { name: "wait on put", method: "PUT", path: "/v2/keys/p?wait=true", body: "value=1" },
  { name: "bad prevExist", method: "PUT", path: "/v2/keys/p", body: "value=1&prevExist=maybe" },
  { name: "bad escape in query", method: "GET", path: "/v2/keys/p?x=%zz" },
  { name: "bad escape in body", method: "PUT", path: "/v2/keys/p", body: "value=%zz" },
  { name: "body wins over query", method: "PUT", path: "/v2/keys/bw?value=query", body: "value=body" },
  { name: "first repeated value wins", method: "PUT", path: "/v2/keys/rep", body: "value=one&value=two" },
  { name: "plus is space", method: "PUT", path: "/v2/keys/sp", body: "value=a+b%20c" },
  { name: "query used without body", method: "PUT", path: "/v2/keys/qv?value=fromquery" },
  { name: "noValueOnSuccess", method: "PUT", path: "/v2/keys/nv", body: "value=1&noValueOnSuccess=true" },
  { name: "noValueOnSuccess error", method: "PUT", path: "/v2/keys/nv", body: "value=1&prevExist=false&noValueOnSuccess=true" },
  { name: "ttl set", method: "PUT", path: "/v2/keys/ttl/a", body: "value=1&ttl=100" },
  { name: "ttl get", method: "GET", path: "/v2/keys/ttl/a" },
  { name: "ttl remove", method: "PUT", path: "/v2/keys/ttl/a", body: "value=2&ttl=&prevExist=true" },
  { name: "ttl b", method: "PUT", path: "/v2/keys/ttl/b", body: "value=1&ttl=100" },
  { name: "refresh", method: "PUT", path: "/v2/keys/ttl/b", body: "ttl=200&refresh=true&prevExist=true" },
  { name: "refresh set path", method: "PUT", path: "/v2/keys/ttl/b", body: "ttl=300&refresh=true" },
  { name: "refresh missing", method: "PUT", path: "/v2/keys/ttl/none", body: "ttl=300&refresh=true" },
  { name: "dir ttl", method: "PUT", path: "/v2/keys/dt", body: "dir=true&ttl=100" },
  { name: "dir ttl update", method: "PUT", path: "/v2/keys/dt", body: "dir=true&ttl=200&prevExist=true" },
  { name: "watch history hit", method: "GET", path: "/v2/keys/t/k2?wait=true&waitIndex={i:1}" },
  { name: "watch recursive history", method: "GET", path: "/v2/keys/t?wait=true&recursive=true&waitIndex={i:1}" },
  { name: "watch ancestor delete", method: "GET", path: "/v2/keys/d1/a/b/c?wait=true&waitIndex={i:22}" },
  { name: "ttl 1s", method: "PUT", path: "/v2/keys/exp/k", body: "value=gone&ttl=1" },
  { name: "expire event reaches a watcher", method: "GET", path: "/v2/keys/exp/k?wait=true&waitIndex={next}", racy: true },
  { name: "expired key is gone", method: "GET", path: "/v2/keys/exp/k" },
  { name: "dir ttl 1s", method: "PUT", path: "/v2/keys/expd", body: "dir=true&ttl=1" },
  { name: "child of expiring dir", method: "PUT", path: "/v2/keys/expd/child", body: "value=c" },
  { name: "dir expiry reaches a child watcher", method: "GET", path: "/v2/keys/expd/child?wait=true&waitIndex={next}", racy: true },
  { name: "head", method: "HEAD", path: "/v2/keys/t/c1" },
  { name: "head missing", method: "HEAD", path: "/v2/keys/t/none" },
  { name: "patch", method: "PATCH", path: "/v2/keys/t/c1" },
  { name: "root listing", method: "GET", path: "/v2/keys/?sorted=true" },
  { name: "root listing recursive", method: "GET", path: "/v2/keys?recursive=true&sorted=true" },
  { name: "unknown path", method: "GET", path: "/v2/nothing" },
  { name: "version", method: "GET", path: "/version" },
  { name: "health", method: "GET", path: "/health" },
  { name: "leader stats", method: "GET", path: "/v2/stats/leader" },
];

const INDEX_FIELDS = new Set(["modifiedIndex", "createdIndex", "index"]);

function normalize(value: unknown, base: number): unknown {
  if (Array.isArray(value)) return value.map((v) => normalize(v, base));
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (INDEX_FIELDS.has(k) && typeof v === "number") out[k] = v === 0 ? 0 : v - base;
      else if (k === "expiration") out[k] = typeof v === "string" && /^\d{4}-\d\d-\d\dT[\d:.]+Z$/.test(v) ? "<time>" : v;
      else if (k === "ttl" && typeof v === "number") out[k] = Math.round(v / 10) * 10;
      else if (k === "key" && typeof v === "string") out[k] = v.replace(/\/(\d{20})$/, (_, d) => `/#${Number(d) - base}`);
      else if (k === "leader") out[k] = "<id>";
      else if (k === "cause" && typeof v === "string")
        out[k] = v.replace(/\[(\d+) != (\d+)\]/g, (_, a, b) => `[${a} != ${Number(b) - base}]`);
      else out[k] = normalize(v, base);
    }
    return out;
  }
  return value;
}

const lastIndex = new Map<Server, number>();

async function ask(s: Server, base: number, step: Step): Promise<Answer> {
  const path = step.path
    .replace(/\{i:(\d+)\}/g, (_, n) => String(base + Number(n)))
    .replace("{next}", () => String((lastIndex.get(s) ?? base) + 1));
  const init: RequestInit = { method: step.method, redirect: "manual" };
  if (step.body !== undefined) {
    init.body = step.body;
    init.headers = { "Content-Type": "application/x-www-form-urlencoded" };
  }
  let r: Response;
  let text: string;
  try {
    r = await fetch(s.url + path, { ...init, signal: AbortSignal.timeout(3000) });
    text = await r.text();
  } catch (e) {
    // A watch that should have hit the history but waits instead shows up here.
    return { status: -1, headers: {}, body: String(e) };
  }
  const headers: Record<string, string> = {};
  if (r.headers.has("x-etcd-index")) lastIndex.set(s, Number(r.headers.get("x-etcd-index")));
  for (const h of ["content-type", "x-etcd-index", "allow", "access-control-allow-origin"]) {
    const v = r.headers.get(h);
    if (v !== null) headers[h] = h === "x-etcd-index" ? String(Number(v) === 0 ? 0 : Number(v) - base) : v;
  }
  for (const h of ["x-etcd-cluster-id", "x-raft-index", "x-raft-term"]) if (r.headers.has(h)) headers[h] = "<present>";
  if (step.racy && headers["x-etcd-index"] !== undefined) headers["x-etcd-index"] = "<racy>";
  let body: unknown = text;
  try {
    body = normalize(JSON.parse(text), base);
  } catch {
    // plain text answers compare as text
  }
  return { status: r.status, headers, body };
}

let etcd: Server;
let ours: Server;
const answers = new Map<string, { etcd: Answer; ours: Answer }>();

beforeAll(async () => {
  [etcd, ours] = await Promise.all([startEtcd(), startOurs()]);
  const bases = await Promise.all(
    [etcd, ours].map(async (s) => Number((await fetch(`${s.url}/v2/keys/`)).headers.get("x-etcd-index"))),
  );
  for (const step of steps) {
    answers.set(step.name, { etcd: await ask(etcd, bases[0]!, step), ours: await ask(ours, bases[1]!, step) });
  }
}, 60_000);

afterAll(async () => {
  await Promise.all([etcd?.stop(), ours?.stop()]);
});

describe("v2 keys API answers like the real etcd", () => {
  for (const step of steps) {
    test(`${step.name}: ${step.method} ${step.path} ${step.body ?? ""}`, () => {
      const a = answers.get(step.name)!;
      expect(a.ours).toEqual(a.etcd);
    });
  }
});

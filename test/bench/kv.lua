-- wrk script for test/bench/kv.ts (etcd v2 keys API load, fixed duration).
--
--   wrk ... -s kv.lua URL -- MODE NKEYS VALUE_BYTES PREFIX [QUERY]
--
-- MODE
--   put   PUT value=<VALUE_BYTES chars> to a random key PREFIX/k<0..NKEYS-1>
--   get   GET a random key PREFIX/k<0..NKEYS-1> (QUERY, e.g. "quorum=true", appended; "-" = none)
--
-- With BENCH_WRK_PCT=1 in the environment, done() also prints "BENCH_PCT p:us,p:us,..." (a grid
-- of percentiles, finer towards the tail) so that the harness can merge the latency
-- distributions of several wrk processes run side by side (test/bench/cluster.ts: one wrk per
-- cluster member).
--
-- Requests are pre-built in init() so request() is a table lookup (cheap enough for one wrk
-- thread to keep tens of thousands of req/s in flight). done() prints one line
-- "BENCH_RESULT {json}" that the harness parses (latencies in microseconds).
-- Writing a fixed number of keys (pre-population, memory scenario) is kv-fill.lua.

local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter - 1)
end

local mode, nkeys, vbytes, prefix, query
local reqs = {}

local function path_of(i)
  local p = prefix .. "/k" .. i
  if query ~= nil and query ~= "" then p = p .. "?" .. query end
  return p
end

function init(args)
  mode = args[1] or "get"
  nkeys = tonumber(args[2] or "10000")
  vbytes = tonumber(args[3] or "100")
  prefix = args[4] or "/v2/keys/bench"
  query = args[5]
  if query == "-" then query = nil end
  -- setup() has already given this thread its id when init() runs
  math.randomseed(os.time() * 1000 + (id or 0) * 7919 + math.floor(os.clock() * 1000000) % 1000)
  local body = "value=" .. string.rep("x", vbytes)
  local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
  for i = 0, nkeys - 1 do
    if mode == "put" then
      reqs[i + 1] = wrk.format("PUT", path_of(i), headers, body)
    else
      reqs[i + 1] = wrk.format("GET", path_of(i), {}, nil)
    end
  end
end

function request()
  return reqs[math.random(nkeys)]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"lat_us":{"min":%d,"mean":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))
  -- (done() runs in wrk's main Lua state, which init() never saw: hence the environment)
  if os.getenv("BENCH_WRK_PCT") == "1" then
    -- p in thousandths: 1..97 by 1, 97..99.9 by 0.02, 99.9..99.998 by 0.002 (about 290 points;
    -- percentile(100) would be 0 in wrk 4.1: the harness adds 100 = max itself)
    local out = {}
    local function add(k) out[#out + 1] = string.format("%.3f:%d", k / 1000, latency:percentile(k / 1000)) end
    for k = 1000, 96000, 1000 do add(k) end
    for k = 97000, 99880, 20 do add(k) end
    for k = 99900, 99998, 2 do add(k) end
    io.write("BENCH_PCT ", table.concat(out, ","), "\n")
  end
end

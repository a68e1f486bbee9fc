-- wrk script for test/bench/kv.ts: write every key exactly once (fixed count, not fixed time).
--
--   wrk ... -s kv-fill.lua URL -- NKEYS VALUE_BYTES PREFIX THREADS
--
-- Thread t of THREADS PUTs value=<VALUE_BYTES chars> to PREFIX/k<i> for i = t, t+THREADS, ...
-- Once a thread has sent its share, delay() parks its connections (no extra requests), and when
-- all of its responses are in it prints "BENCH_FILL_DONE <t>" and stops. wrk's main thread still
-- sleeps for -d, so the harness sends wrk SIGINT once every thread has printed the marker; done()
-- then prints "BENCH_RESULT {json}" as in kv.lua. Needs NKEYS/THREADS >= connections per thread.
-- Every 2,000 responses it prints "BENCH_FILL_PROGRESS <t> <n>" so the harness can tell a stall
-- (e.g. a lost request after a reconnect: the count would never be reached) from slow progress.
-- (delay() is defined here, and not in kv.lua, because wrk then routes every request through a
-- timer event; the fixed-time put/get runs should not pay for that.)

local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter - 1)
end

local nkeys, vbytes, prefix, nthreads, tid
local sent, received, share = 0, 0, 0
local body, headers

-- Order in wrk: setup() (gives the thread its id), then init(); then, on thread 0's state only,
-- one request() call that wrk makes just to count the requests in the string (never sent).
-- Every real request goes through delay() first (because delay is defined), so delay() hands out
-- the slots: `granted` counts requests allowed, and a request() with no slot is that check.
local granted = 0

function init(args)
  nkeys = tonumber(args[1] or "10000")
  vbytes = tonumber(args[2] or "100")
  prefix = args[3] or "/v2/keys/bench"
  nthreads = tonumber(args[4] or "1")
  tid = id or 0
  body = "value=" .. string.rep("x", vbytes)
  headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
  share = 0
  for i = tid, nkeys - 1, nthreads do share = share + 1 end
end

function delay()
  if granted >= share then return 3600000 end -- parked until the thread stops
  granted = granted + 1
  return 0
end

function request()
  if sent >= granted then
    -- wrk's format check (or a resend after a reconnect): not one of ours
    return wrk.format("GET", "/version")
  end
  local i = tid + sent * nthreads
  sent = sent + 1
  return wrk.format("PUT", prefix .. "/k" .. i, headers, body)
end

function response(status, hdrs, b)
  received = received + 1
  if received % 2000 == 0 then
    io.write("BENCH_FILL_PROGRESS " .. tid .. " " .. received .. "\n")
    io.flush()
  end
  if received == share then
    io.write("BENCH_FILL_DONE " .. tid .. "\n")
    io.flush()
    wrk.thread:stop()
  end
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
end

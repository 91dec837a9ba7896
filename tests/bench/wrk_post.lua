-- wrk script for the serving benchmarks (tests/bench/harness.py runs it).
--
-- Posts AdmissionReviews over wrk's keep-alive connections. BENCH_BODIES names a file with
-- one JSON body per line; connections cycle through them. BENCH_RATE > 0 paces requests to
-- that many per second in total (BENCH_THREADS wrk threads share it): every thread keeps an
-- open-loop schedule of send slots and delay() waits for the next one, so a slow response
-- does not slow the schedule down as long as a connection is free (use enough connections).
-- Latency is wrk's own: from writing a request to reading its response.
-- done() prints one line "BENCH_RESULT {json}" for the harness.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clock_id, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local timespec = ffi.new("bench_timespec")

local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
  return tonumber(timespec.tv_sec) * 1000 + tonumber(timespec.tv_nsec) / 1e6
end

local rate = tonumber(os.getenv("BENCH_RATE") or "0") or 0
local threads = tonumber(os.getenv("BENCH_THREADS") or "1") or 1
local requests = {}
local index = 0
local interval_ms = nil
local next_slot = nil

function init(args)
  local path = assert(os.getenv("BENCH_BODIES"), "BENCH_BODIES is not set")
  local headers = { ["Content-Type"] = "application/json" }
  for line in io.lines(path) do
    if #line > 0 then
      requests[#requests + 1] = wrk.format("POST", nil, headers, line)
    end
  end
  assert(#requests > 0, "no request bodies in " .. path)
  if rate > 0 then
    interval_ms = 1000.0 * threads / rate
  end
end

function request()
  index = index % #requests + 1
  return requests[index]
end

if rate > 0 then
  function delay()
    local now = now_ms()
    if next_slot == nil then
      next_slot = now
    end
    local slot = next_slot
    next_slot = next_slot + interval_ms
    if slot <= now then
      return 0
    end
    return math.floor(slot - now + 0.5)
  end
end

local non2xx = 0

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

function done(summary, latency, _)
  local e = summary.errors
  print(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "max_us": %d, "errors": %d}',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max,
    e.connect + e.read + e.write + e.status + e.timeout))
end

-- Visitors browsing a catalogue: each request is a random visitor (a
-- session cookie out of a pool) looking at a random product.
--
--   BENCH_VISITORS   visitors in the pool            (default 10000)
--   BENCH_PRODUCTS   products in the catalogue       (default 10000)
--   BENCH_PATH       the path, "%d" is the product   (default /product/%d)
--   BENCH_COOKIE     the session cookie's name       (default sessionid)
--   BENCH_POOL       requests prepared per thread    (default: the
--                    visitors, at least 16384, at most 65536)
--
-- Each thread prepares BENCH_POOL requests before the clock starts and
-- sends them in turn: building a request in Lua for each one would cost
-- wrk more CPU than nginx spends answering it, on a machine they share.
--
-- At the end one line for bench/run.sh:
--   BENCH requests=... duration_us=... p50=... (latencies in microseconds)

local visitors = tonumber(os.getenv("BENCH_VISITORS") or "10000")
local products = tonumber(os.getenv("BENCH_PRODUCTS") or "10000")
local path     = os.getenv("BENCH_PATH") or "/product/%d"
local cookie   = (os.getenv("BENCH_COOKIE") or "sessionid") .. "=v"
local size     = tonumber(os.getenv("BENCH_POOL") or
                          math.min(math.max(visitors, 16384), 65536))

local counter = 0

function setup(thread)
    counter = counter + 1
    thread:set("thread_id", counter)
end

local pool, next = {}, 0

function init(args)
    -- a different sequence per thread and per run
    math.randomseed(os.time() * 1000 + (thread_id or 0) * 7919)
    for i = 1, size do
        pool[i] = wrk.format("GET",
                             string.format(path, math.random(products)),
                             { Cookie = cookie .. math.random(visitors) })
    end
end

function request()
    next = next % size + 1
    return pool[next]
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "BENCH requests=%d duration_us=%d bytes=%d errors_connect=%d " ..
        "errors_read=%d errors_write=%d errors_status=%d errors_timeout=%d " ..
        "p50=%d p90=%d p99=%d p999=%d max=%d mean=%d\n",
        summary.requests, summary.duration, summary.bytes,
        e.connect, e.read, e.write, e.status, e.timeout,
        latency:percentile(50), latency:percentile(90),
        latency:percentile(99), latency:percentile(99.9),
        latency.max, latency.mean))
end

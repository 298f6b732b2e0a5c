-- wrk script of `make bench` (scripts/bench.sh): one scenario per run, chosen by
-- BENCH_SCENARIO; ids, keys, tokens and words come from the Lua table the bench script
-- writes from `feria seed`'s JSON (BENCH_CONFIG). Every request draws new parameters.
--
--   healthz  GET /healthz                                   (the floor: no database)
--   product  GET /api/v1/products/:id                       (API key, random product id)
--   browse   GET /api/v1/marketplace?q=&niche=&min_price=&max_price=&page_size=20
--                                                           (session of a member)
local scenario = os.getenv("BENCH_SCENARIO") or "healthz"
local cfg = dofile(os.getenv("BENCH_CONFIG"))
local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("thread_id", counter)
end

function init(args)
   math.randomseed(os.time() * 1000 + (thread_id or 0) * 7919)
end

local function product_path()
   local per = math.floor(cfg.products.count / cfg.platform_count)
   local n = 1 + math.random(0, per - 1) * cfg.platform_count
   return "/api/v1/products/" .. cfg.products.prefix .. "_" .. cfg.products.stem
      .. string.format("%010d", n)
end

local function browse_path()
   local word = cfg.words[math.random(1, #cfg.words)]
   local niche = cfg.niches[math.random(1, #cfg.niches)]
   local min = math.random(0, 149)
   return string.format(
      "/api/v1/marketplace?q=%s&niche=%s&min_price=%d&max_price=%d&page_size=20",
      word, niche, min, min + 50)
end

function request()
   if scenario == "product" then
      return wrk.format("GET", product_path(), { ["Authorization"] = "Bearer " .. cfg.api_key })
   elseif scenario == "browse" then
      return wrk.format("GET", browse_path(), { ["Authorization"] = "Bearer " .. cfg.access_token })
   else
      return wrk.format("GET", "/healthz")
   end
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "BENCHJSON {\"requests\":%d,\"duration_us\":%d,\"p50_us\":%d,\"p99_us\":%d,"
         .. "\"non_2xx\":%d,\"socket_errors\":%d}\n",
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
      e.status, e.connect + e.read + e.write + e.timeout))
end

-- wrk script of `make bench` (scripts/bench.sh): one scenario per run, chosen by
-- BENCH_SCENARIO; ids, keys, tokens and words come from the Lua table the bench script
-- writes from `feria seed`'s JSON (BENCH_CONFIG). Every request draws new parameters.
--
--   healthz  GET /healthz                                   (the floor: no database)
--   product  GET /api/v1/products/:id                       (API key, random product id)
--   browse   GET /api/v1/marketplace?q=&niche=&min_price=&max_price=&page_size=20
--                                                           (session of a member)
--   purchase POST /api/v1/marketplace/:id/purchase          (S3: buyers' sessions, the hot
--            listings, each (buyer, listing) once in turn, Idempotency-Key = buyer +
--            listing, so a repeat is answered with the first purchase: every answer a 201)
--   settle   PUT /api/v1/contracts/:id/settle                (S5: API key, each thread walks
--            its share of the seeded open contracts, Idempotency-Key = the contract; a
--            thread out of contracts repeats its last one, answered from its settlement)
--   signin   POST /api/v1/auth/otp/verify, POST /api/v1/auth/session/refresh
--            (S4: codes requested and read from the mail directory beforehand, each used
--            once; every other request rotates a refresh token a verify or refresh returned)
local scenario = os.getenv("BENCH_SCENARIO") or "healthz"
local cfg = dofile(os.getenv("BENCH_CONFIG"))
local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("thread_id", counter)
end

local next_code
local next_contract
local next_purchase
local pending = {}
local toggle = false

function init(args)
   math.randomseed(os.time() * 1000 + (thread_id or 0) * 7919)
   -- Thread i uses codes i, i + threads, ...: no code is verified twice.
   next_code = thread_id or 1
   next_contract = thread_id or 1
   next_purchase = thread_id or 1
end

local json_headers = { ["Content-Type"] = "application/json" }

local function signin_request()
   toggle = not toggle
   if toggle and #pending > 0 then
      local token = table.remove(pending)
      return wrk.format("POST", "/api/v1/auth/session/refresh", json_headers,
         '{"refresh_token":"' .. token .. '"}')
   end
   local c = cfg.codes[next_code]
   if c == nil then
      -- Out of codes: rotate what is left (or fall back to one refresh chain).
      local token = table.remove(pending)
      if token then
         return wrk.format("POST", "/api/v1/auth/session/refresh", json_headers,
            '{"refresh_token":"' .. token .. '"}')
      end
      return wrk.format("GET", "/healthz")
   end
   next_code = next_code + cfg.threads
   return wrk.format("POST", "/api/v1/auth/otp/verify", json_headers, string.format(
      '{"platform_id":"%s","email":"%s","code":"%s","mode":"test"}',
      cfg.platform_id, c[1], c[2]))
end

if scenario == "signin" then
   -- Defined only for S4: wrk parses response bodies only when this exists.
   function response(status, headers, body)
      local token = body:match('"refresh_token"%s*:%s*"([^"]+)"')
      if token then
         table.insert(pending, token)
         if #pending > 64 then table.remove(pending, 1) end
      end
   end
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

-- Purchase k (thread i makes k = i, i + threads, ...) is listing k mod H by buyer k div
-- H: concurrent purchases spread over the hot listings, and every (buyer, listing) pair
-- is bought once before any is repeated (a repeat is answered from the first purchase).
local function purchase_request()
   local pairs = #cfg.hot_listings * #cfg.buyers
   local k = (next_purchase - 1) % pairs
   next_purchase = next_purchase + cfg.threads
   local h = 1 + k % #cfg.hot_listings
   local b = 1 + math.floor(k / #cfg.hot_listings)
   return wrk.format("POST", "/api/v1/marketplace/" .. cfg.hot_listings[h] .. "/purchase", {
      ["Authorization"] = "Bearer " .. cfg.buyers[b],
      ["Idempotency-Key"] = string.format("s3-%d-%d", b, h),
   })
end

local function settle_request()
   local n = next_contract
   if cfg.contracts[n] ~= nil and cfg.contracts[n + cfg.threads] ~= nil then
      next_contract = n + cfg.threads
   end
   local id = cfg.contracts[n]
   if id == nil then
      return wrk.format("GET", "/healthz")
   end
   return wrk.format("PUT", "/api/v1/contracts/" .. id .. "/settle", {
      ["Authorization"] = "Bearer " .. cfg.api_key,
      ["Idempotency-Key"] = "s5-" .. id,
   })
end

function request()
   if scenario == "signin" then
      return signin_request()
   elseif scenario == "purchase" then
      return purchase_request()
   elseif scenario == "settle" then
      return settle_request()
   elseif scenario == "product" then
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

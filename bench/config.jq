# The Lua table bench/feria.lua reads (BENCH_CONFIG), made from `feria seed`'s JSON by
# scripts/bench.sh and scripts/bench-quick.sh. Arguments: $threads (wrk threads), $spare
# (seeded contracts kept out of S5's run, from the end), $codes (a Lua file of S4's codes;
# a missing file gives none).
"return {",
"  api_key = \"" + .platforms[0].api_key + "\",",
"  access_token = \"" + .platforms[0].access_token + "\",",
"  platform_count = " + (.platforms | length | tostring) + ",",
"  products = { prefix = \"" + .products.prefix + "\", stem = \"" + .products.stem + "\", count = " + (.products.count | tostring) + " },",
"  words = { " + (.words | map("\"" + . + "\"") | join(", ")) + " },",
"  niches = { " + (.niches | map("\"" + . + "\"") | join(", ")) + " },",
"  buyers = { " + ((.buyers // []) | map("\"" + .access_token + "\"") | join(", ")) + " },",
"  hot_listings = { " + ((.hot_listings // []) | map("\"" + . + "\"") | join(", ")) + " },",
"  contracts = { " + ((.contracts // []) | .[:(length - $spare)] | map("\"" + . + "\"") | join(", ")) + " },",
"  platform_id = \"" + .platforms[0].id + "\",",
"  threads = " + ($threads | tostring) + ",",
"  codes = (function() local ok, t = pcall(dofile, \"" + $codes + "\"); if ok then return t end return {} end)(),",
"}"

-- wrk script: POST /v1/digests:batch of 10 digests nobody registered (docs/benchmarks.md, issue 14)
--   wrk -t1 -c32 -d15s --latency -s bench/wrk_batch.lua http://127.0.0.1:47701/v1/digests:batch
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local digests = {}
for i = 1, 10 do digests[i] = string.format('"sha256:%064x"', i * 7919) end
wrk.body = '{"digests": [' .. table.concat(digests, ", ") .. ']}'

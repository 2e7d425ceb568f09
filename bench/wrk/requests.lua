-- Requests for wrk read from a file, one a line: METHOD<TAB>PATH<TAB>TOKEN<TAB>BODY.
-- Used by bench/_serverbound.py: `wrk -s bench/wrk/requests.lua URL -- FILE`.
-- Each connection takes the next line (cycling), so a file of distinct submissions
-- is never sent twice as long as it holds more lines than the run sends.
-- WRK_GAP_MS (environment), when set, makes each connection wait an exponentially
-- distributed time of that mean before each request: a paced load whose mean
-- rate is about connections / (gap + latency) (closed loop with think time).
local lines = {}
local n = 0
local gap = tonumber(os.getenv("WRK_GAP_MS") or "0")

function init(args)
  local f = assert(io.open(args[1], "r"))
  for line in f:lines() do
    local method, path, token, body = line:match("^(%S+)\t(%S+)\t(%S*)\t(.*)$")
    local headers = {}
    if token ~= "" then headers["Authorization"] = "Bearer " .. token end
    if body == "" then
      body = nil
    else
      headers["Content-Type"] = "application/json"
    end
    lines[#lines + 1] = wrk.format(method, path, headers, body)
  end
  f:close()
  math.randomseed(os.time())
end

function request()
  n = n + 1
  if n > #lines then n = 1 end
  return lines[n]
end

if gap > 0 then
  function delay()
    return -math.log(1 - math.random()) * gap
  end
end

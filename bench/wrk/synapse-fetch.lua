-- Synapse's fetch: GET /_matrix/client/v3/rooms/{room}/event/{event id}.
-- Used by bench/synapse.py:
--   wrk -s bench/wrk/synapse-fetch.lua URL -- PATH TOKENS_FILE
-- PATH is the whole event path (room and event ids percent-encoded);
-- TOKENS_FILE one access token a line: the requests cycle through them (the
-- room's members each read the event, as Cadena's recipients each retrieve).
local requests = {}
local n = 0

function init(args)
  local f = assert(io.open(args[2], "r"))
  for token in f:lines() do
    if token ~= "" then
      requests[#requests + 1] = wrk.format("GET", args[1],
                                           {["Authorization"] = "Bearer " .. token})
    end
  end
  f:close()
end

function request()
  n = n + 1
  if n > #requests then n = 1 end
  return requests[n]
end

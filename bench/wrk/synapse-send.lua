-- Synapse's send: PUT /_matrix/client/v3/rooms/{room}/send/m.room.encrypted/{txn id}.
-- Used by bench/synapse.py:
--   wrk -s bench/wrk/synapse-send.lua URL -- PATH BODY_FILE TOKENS_FILE RUN_ID
-- PATH is the send path up to and including "m.room.encrypted/" (the room id
-- percent-encoded); BODY_FILE holds the event content (JSON on one line);
-- TOKENS_FILE one access token a line, taken in turn (the room's members).
-- Every request carries a transaction id of its own (RUN_ID, the wrk thread,
-- a counter): Synapse answers a repeated (device, txn id) from its cache
-- without sending anything, which would flatter it.
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

local function slurp(name)
  local f = assert(io.open(name, "r"))
  local text = f:read("*a")
  f:close()
  return text
end

local path, body, run_id
local tokens = {}
local n = 0

function init(args)
  path, run_id = args[1], args[4]
  body = (slurp(args[2]):gsub("%s+$", ""))
  for line in slurp(args[3]):gmatch("[^\n]+") do tokens[#tokens + 1] = line end
  thread_id = thread_id or 1
end

function request()
  n = n + 1
  local headers = {["Authorization"] = "Bearer " .. tokens[n % #tokens + 1],
                   ["Content-Type"] = "application/json"}
  return wrk.format("PUT", path .. run_id .. "-" .. thread_id .. "-" .. n, headers, body)
end

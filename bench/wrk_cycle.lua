-- wrk script for bench/loadgen.py: cycles pre-built raw HTTP requests read from a file
-- ("<length>\n<bytes>" each) and prints a one-line JSON summary at the end.
-- Each wrk thread starts at a different place in the list.

-- wrk's own resolve() test-connects to the server and closes the socket without a request,
-- which makes the OpenSSL 3.0 responder spin forever: take the addresses as they are.
function wrk.resolve(host, service)
  wrk.addrs = wrk.lookup(host, service)
end

local requests = {}
local position = 0
local next_thread = 0

function setup(thread)
  thread:set("thread_index", next_thread)
  next_thread = next_thread + 1
end

function init(args)
  local file = assert(io.open(args[1], "rb"))
  while true do
    local line = file:read("*l")
    if not line then break end
    requests[#requests + 1] = file:read(tonumber(line))
  end
  file:close()
  position = ((thread_index or 0) * 7919) % #requests
end

function request()
  position = position % #requests + 1
  return requests[position]
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "errors": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end

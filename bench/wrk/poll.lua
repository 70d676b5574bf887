-- A dashboard that polls: each connection sends the ETag of the last answer it got
-- in If-None-Match, as a browser or a polling client does, so every answer is a 304
-- until the data (or the stats window's step) changes. Counts 200s and 304s.
-- Usage: wrk -t1 -c16 -d10s --latency -s bench/wrk/poll.lua URL

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")

etag = nil
fresh, not_modified = 0, 0  -- globals, so that done() can read them per thread
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function request()
  if etag then
    return wrk.format("GET", nil, { ["If-None-Match"] = etag })
  end
  return wrk.format("GET")
end

function response(status, headers, body)
  if status == 304 then
    not_modified = not_modified + 1
  else
    fresh = fresh + 1
  end
  local tag = headers["ETag"] or headers["etag"] or headers["Etag"]
  if tag then
    etag = tag
  end
end

local report_done = done
function done(summary, latency, requests)
  local total_fresh, total_304 = 0, 0
  for _, thread in ipairs(threads) do
    total_fresh = total_fresh + thread:get("fresh")
    total_304 = total_304 + thread:get("not_modified")
  end
  io.write(string.format('WRK_POLL {"fresh":%d,"not_modified":%d}\n', total_fresh, total_304))
  report_done(summary, latency, requests)
end

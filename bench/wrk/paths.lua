-- Cycles through the request paths in a file (one per line, e.g. many run ids), so the
-- server and database see different keys rather than one hot row; reports like report.lua.
-- Usage: wrk -t1 -c16 -d10s --latency -s bench/wrk/paths.lua URL -- PATHS_FILE

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")

local requests_by_path = {}
local position = 1

function init(args)
  for line in io.lines(args[1]) do
    if line ~= "" then
      requests_by_path[#requests_by_path + 1] = wrk.format("GET", line)
    end
  end
  -- Threads start at different places in the list.
  position = (math.random(#requests_by_path) - 1) % #requests_by_path + 1
end

function request()
  local req = requests_by_path[position]
  position = position % #requests_by_path + 1
  return req
end

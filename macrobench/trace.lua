-- trace.lua: replay a request trace (one URL path a line) with wrk.
-- usage: wrk ... -s trace.lua URL -- TRACEFILE
-- Each thread starts at its own offset; done() prints one CSV line:
-- CSV,requests,duration_s,throughput_req_s,MiB_s,lat_mean_ms,lat_p50_ms,lat_p99_ms,errors
local paths = {}
local idx = 0
local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("tid", counter)
end

function init(args)
   local f = assert(io.open(args[1], "r"))
   for line in f:lines() do paths[#paths + 1] = line end
   f:close()
   idx = ((tid or 1) * 7919) % #paths
end

function request()
   idx = idx + 1
   if idx > #paths then idx = 1 end
   return wrk.format("GET", paths[idx])
end

function done(summary, latency, requests)
   local s = summary.duration / 1e6
   local e = summary.errors
   io.write(string.format("CSV,%d,%.3f,%.1f,%.2f,%.3f,%.3f,%.3f,%d\n",
      summary.requests, s, summary.requests / s, summary.bytes / s / 1048576,
      latency.mean / 1000, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
      e.connect + e.read + e.write + e.status + e.timeout))
end

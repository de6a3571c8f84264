-- wrk script for bench/receiver --paced: the deliveries of deliveries.lua at a constant
-- offered rate instead of as fast as the server answers.
--
-- Arguments: the requests' directory (as deliveries.lua) and this thread's gap between two
-- sends in milliseconds. The gap is kept per thread across all its connections: each send
-- takes the next slot of a fixed schedule, so the offered load does not follow the answers'
-- speed as a fixed wait per connection would. A slot already past is sent at once and the
-- schedule continues from there (no burst to catch up), so the rate is at most the one asked
-- for; the benchmark prints the rate reached.
--
-- wrk times a request from the moment it is sent: the wait for a slot is not latency.

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "deliveries.lua")

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } paced_timespec;
int clock_gettime(int clock_id, paced_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local clock = ffi.new("paced_timespec")

local function now_ms()
   ffi.C.clock_gettime(CLOCK_MONOTONIC, clock)
   return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
end

local deliveries_init = init

function init(args)
   deliveries_init(args)
   gap_ms = tonumber(args[2])
   next_slot = nil
end

function delay()
   local now = now_ms()
   local slot = now
   if next_slot ~= nil and next_slot > now then
      slot = next_slot
   end
   next_slot = slot + gap_ms
   return math.floor(slot - now + 0.5)
end

-- wrk script for bench/receiver: send pre-signed deliveries, each once, and count answers.
-- Every thread reads its own file of requests (one per line: id, timestamp, signature and
-- body separated by tabs), so no two connections send the same delivery.

local threads = {}

function setup(thread)
   thread:set("index", #threads)
   table.insert(threads, thread)
end

function init(args)
   local path = args[1] .. "/requests-" .. index .. ".tsv"
   requests = {}
   for line in io.lines(path) do
      local id, ts, sig, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
      requests[#requests + 1] = wrk.format("POST", "/webhooks/rivya", {
         ["Content-Type"] = "application/json",
         ["webhook-id"] = id,
         ["webhook-timestamp"] = ts,
         ["webhook-signature"] = sig,
      }, body)
   end
   sent = 0
   ok = 0
   other = 0
   wrapped = 0
end

function request()
   sent = sent + 1
   local i = sent
   if i > #requests then
      -- Ran out of unique deliveries: repeats are duplicates and are reported as such.
      wrapped = wrapped + 1
      i = (i - 1) % #requests + 1
   end
   return requests[i]
end

function response(status, headers, body)
   if status >= 200 and status < 300 then
      ok = ok + 1
   else
      other = other + 1
   end
end

function done(summary, latency, requests)
   local ok_total, other_total, sent_total, wrapped_total = 0, 0, 0, 0
   for _, thread in ipairs(threads) do
      ok_total = ok_total + thread:get("ok")
      other_total = other_total + thread:get("other")
      sent_total = sent_total + thread:get("sent")
      wrapped_total = wrapped_total + thread:get("wrapped")
   end
   io.write(string.format(
      'BENCH {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
      '"max_us": %d, "ok": %d, "other": %d, "sent": %d, "wrapped": %d, ' ..
      '"connect_errors": %d, "read_errors": %d, "write_errors": %d, "timeouts": %d}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
      latency.max, ok_total, other_total, sent_total, wrapped_total,
      summary.errors.connect, summary.errors.read, summary.errors.write,
      summary.errors.timeout))
end

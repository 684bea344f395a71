-- wrk script: POST unique events (a fresh event_id each time, so dedup never short-cuts).
-- Arguments: server key, events per request, and "new" to make every customer new (an email,
-- phone and IP address never seen before: the caches never help), else a shop's repeat
-- customers (5,000 emails, 10,000 phones).
local counter = 0
local key, batch, new
local threads = 0

-- Each thread has its own Lua state, and an unseeded math.random gives every thread the same
-- numbers: the thread's number and the start time keep the ids of threads and runs apart.
function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end

function init(args)
  key = args[1]
  batch = tonumber(args[2])
  new = args[3] == "new"
  counter = thread_number * 1000000000000 + (os.time() % 1000000) * 1000000
end

local function event(id)
  if new then
    return string.format(
      '{"event":"purchase","event_id":"wrk-%d","user":{"email":"customer%d@example.com",' ..
      '"phone":"+1 213 %03d %04d","ip":"13.%d.%d.%d","user_agent":"wrk"},' ..
      '"properties":{"order_id":"o%d","value":25.5,"currency":"USD",' ..
      '"items":[{"item_id":"sku-1","price":25.5,"quantity":1}]}}', id, id,
      200 + math.floor(id / 10000) % 800, id % 10000, 1 + math.floor(id / 65536) % 200,
      math.floor(id / 256) % 256,
      id % 256, id)
  end
  return string.format(
    '{"event":"purchase","event_id":"wrk-%d","user":{"email":"customer%d@example.com",' ..
    '"phone":"+1 213 555 %04d","ip":"13.57.97.131","user_agent":"wrk"},' ..
    '"properties":{"order_id":"o%d","value":25.5,"currency":"USD",' ..
    '"items":[{"item_id":"sku-1","price":25.5,"quantity":1}]}}', id, id % 5000, id % 10000, id)
end

function request()
  local events = {}
  for i = 1, batch do
    counter = counter + 1
    events[i] = event(counter)
  end
  local body = '{"events":[' .. table.concat(events, ",") .. ']}'
  return wrk.format("POST", nil, {["Authorization"] = "Bearer " .. key,
                                  ["Content-Type"] = "application/json"}, body)
end

-- wrk script: POST unique events (a fresh event_id each time, so dedup never short-cuts).
-- Arguments: server key, events per request.
local counter = 0
local key, batch

function init(args)
  key = args[1]
  batch = tonumber(args[2])
  counter = math.random(1, 1000000000) * 1000
end

local function event(id)
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

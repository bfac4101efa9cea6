-- wrk script: durable datapoint writes with a changing value.
local n = 0
request = function()
  n = n + 1
  return wrk.format("PUT", nil, { ["Content-Type"] = "application/json" },
    string.format('{"value":%d.5}', n % 100))
end

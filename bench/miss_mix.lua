-- bench/miss_mix.lua — the editor + reader mix of bench/miss.sh (4). The
-- bench writes a header before this text: ids (published item ids, the
-- most read first), zipf_s, save_pct, editor_pct, list_pct, token.
--
-- Every request picks an item by Zipf rank (P(rank k) ∝ 1/k^zipf_s) and
-- is, by a second draw: a save (PUT of a new title with If-Match: *, the
-- editor's token) with probability save_pct %; an editor's read of the
-- item (the token: the response cache does not serve it) with editor_pct
-- %; an anonymous list page (one of a few variants, also by Zipf rank)
-- with list_pct %; else an anonymous read of the item.

local cdf = {}
do
  local sum = 0
  for k = 1, #ids do
    sum = sum + 1 / (k ^ zipf_s)
    cdf[k] = sum
  end
  for k = 1, #ids do cdf[k] = cdf[k] / sum end
end

local function rank(n)
  local u = math.random() * cdf[n] -- within the first n ranks
  local lo, hi = 1, n
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cdf[mid] < u then lo = mid + 1 else hi = mid end
  end
  return lo
end

local lists = {"/v1/main/content?limit=20", "/v1/main/content?limit=20&sort=-updated_at",
               "/v1/main/content?limit=20&sort=title", "/v1/main/content?limit=10",
               "/v1/main/content?limit=20&sort=published_at"}
local read_headers = {["Authorization"] = "Bearer " .. token}
local save_headers = {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json",
                      ["If-Match"] = "*"}

local threads = {}
function setup(thread)
  thread:set("seed", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() * 1000 + (tonumber(seed) or 0))
  saves = 0
  n = 0
end

function request()
  n = n + 1
  local id = ids[rank(#ids)]
  local draw = math.random() * 100
  if draw < save_pct then
    saves = saves + 1
    return wrk.format("PUT", "/v1/main/content/" .. id, save_headers, '{"title":"mix save ' .. n .. '"}')
  elseif draw < save_pct + editor_pct then
    return wrk.format("GET", "/v1/main/content/" .. id, read_headers)
  elseif draw < save_pct + editor_pct + list_pct then
    return wrk.format("GET", lists[rank(#lists < #ids and #lists or #ids)])
  end
  return wrk.format("GET", "/v1/main/content/" .. id)
end

function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + (tonumber(t:get("saves")) or 0) end
  io.write(string.format("saves=%d\n", total))
end

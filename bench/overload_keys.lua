-- bench/overload_keys.lua — wrk script for bench/overload.sh: reads the
-- paths file the bench wrote ($OVERLOAD_PATHS: one distinct cache key a
-- line) and gives each wrk thread its own stretch of it, so every request
-- is a cache miss that needs a database worker.
local threads = 0
function setup(thread)
    threads = threads + 1
    thread:set("tid", threads)
end

function init(args)
    paths = {}
    for line in io.lines(os.getenv("OVERLOAD_PATHS")) do
        paths[#paths + 1] = line
    end
    counter = (tid - 1) * math.floor(#paths / 8)
end

function request()
    counter = counter + 1
    return wrk.format("GET", paths[(counter % #paths) + 1])
end

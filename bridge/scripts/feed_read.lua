-- feed_read.lua - the newest post ids of one feed whose body still exists.
--
-- ARGV: prefix, user id, limit (> 0).
-- Keys (built from the prefix): feed:<uid>, post:<id> of the ids read.
--
-- Walks feed:<uid> from the newest end in pages of 256 and keeps ids whose
-- post:<id> exists, each id once, until `limit` are found or the list ends
-- (it is capped at the feed length, so that bounds the work). Read-only.
-- Returns the ids, newest first.
local prefix, uid, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local feed = prefix .. 'feed:' .. uid
local out, seen = {}, {}
local start = 0
while #out < limit do
    local page = redis.call('LRANGE', feed, start, start + 255)
    if #page == 0 then
        break
    end
    for _, id in ipairs(page) do
        if #out < limit and not seen[id] then
            seen[id] = true
            if redis.call('EXISTS', prefix .. 'post:' .. id) == 1 then
                out[#out + 1] = id
            end
        end
    end
    start = start + #page
end
return out

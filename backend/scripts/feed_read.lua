-- feed_read.lua - one page of a feed: the newest posts whose body still
-- exists.
--
-- ARGV: prefix, user id, limit (> 0), before ('' for the newest page, else
-- a post id: the page starts after that entry).
-- Keys (built from the prefix): feed:<uid>, post:<id> of the ids read.
--
-- Walks feed:<uid> from the newest end in pages of 256 and keeps ids whose
-- post:<id> exists, each id once, until `limit` are found or the list ends
-- (it is capped at the feed length, so that bounds the work). With
-- `before`, entries up to and including that id are skipped; when it is
-- not in the list the page is empty. Read-only.
-- Returns id1, body1, id2, body2, ... newest first.
local prefix, uid, limit, before = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4] or ''
local feed = prefix .. '@FP_KEY_FEED@' .. uid
local out, seen, n = {}, {}, 0
local start = 0
local skipping = before ~= ''
while n < limit do
    local page = redis.call('LRANGE', feed, start, start + 255)
    if #page == 0 then
        break
    end
    for _, id in ipairs(page) do
        if skipping then
            seen[id] = true
            if id == before then
                skipping = false
            end
        elseif n < limit and not seen[id] then
            seen[id] = true
            local body = redis.call('GET', prefix .. '@FP_KEY_POST@' .. id)
            if body then
                out[#out + 1] = id
                out[#out + 1] = body
                n = n + 1
            end
        end
    end
    start = start + #page
end
return out

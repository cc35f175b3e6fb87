-- feed_read.lua - one page of a feed: the newest posts whose body still
-- exists.
--
-- ARGV: prefix, user id, limit (> 0), before ('' for the newest page, else
-- a post id: the page starts after that entry).
-- Keys (built from the prefix): revoked:<uid>, feed:<uid>, post:<id> of
-- the ids read.
--
-- Walks feed:<uid> from the newest end and keeps ids whose post:<id>
-- exists, each id once, until `limit` are found or the list ends (it is
-- capped at the feed length, so that bounds the work). With `before`,
-- entries up to and including that id are skipped; when it is not in the
-- list the page is empty. Read-only.
--
-- Cost: one LRANGE and one MGET per round. While skipping a round reads
-- 256 entries; otherwise it reads what is still missing plus a few (a
-- deleted post leaves its id in the list until it is trimmed), so a
-- first page of 50 is usually one LRANGE of 58 and one MGET.
-- Returns revoked, id1, body1, id2, body2, ... newest first, where revoked
-- is revoked:<uid> (nil when unset): the gateway checks the caller's token
-- against it with the same round trip (limit 0 reads only that).
local prefix, uid, limit, before = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4] or ''
local feed = prefix .. '@FP_KEY_FEED@' .. uid
local out, seen, n = {redis.call('GET', prefix .. '@FP_KEY_REVOKED@' .. uid)}, {}, 0
local start = 0
local skipping = before ~= ''
while n < limit do
    local size = 256
    if not skipping then
        size = math.min(256, limit - n + 8)
    end
    local page = redis.call('LRANGE', feed, start, start + size - 1)
    if #page == 0 then
        break
    end
    local ids, keys = {}, {}
    for _, id in ipairs(page) do
        if skipping then
            seen[id] = true
            if id == before then
                skipping = false
            end
        elseif not seen[id] then
            seen[id] = true
            ids[#ids + 1] = id
            keys[#keys + 1] = prefix .. '@FP_KEY_POST@' .. id
        end
    end
    if #keys > 0 then
        local bodies = redis.call('MGET', unpack(keys))
        for i = 1, #keys do
            if bodies[i] and n < limit then
                out[#out + 1] = ids[i]
                out[#out + 1] = bodies[i]
                n = n + 1
            end
        end
    end
    start = start + #page
end
return out

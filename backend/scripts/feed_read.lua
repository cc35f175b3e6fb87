-- feed_read.lua - one page of a feed: the newest posts whose body still
-- exists, or the ones newer than a given entry.
--
-- ARGV: prefix, user id, limit (>= 0), before ('' for the newest page,
-- else a post id: the page starts after that entry), after ('' or a post
-- id: the page holds entries newer than that one). At most one of before
-- and after is set (the caller checks).
-- Keys (built from the prefix): revoked:<uid>, feed:<uid>, post:<id> of
-- the ids read.
--
-- Walks feed:<uid> from the newest end and keeps ids whose post:<id>
-- exists, each id once, until `limit` are found or the list ends (it is
-- capped at the feed length, so that bounds the work). With `before`,
-- entries up to and including that id are skipped; when it is not in the
-- list the page is empty. Read-only.
--
-- With `after`, the list is read from the newest end down to the first
-- occurrence of that id, and the page is the `limit` ids nearest to it
-- (the oldest of the newer ones), so that the page's newest id is the
-- cursor of the next call; one more is looked for to tell whether newer
-- ones remain above the page. When the id is not in the list, the page is
-- the newest one, as without a cursor.
--
-- Cost: one LRANGE and one MGET per round. While skipping (or looking for
-- `after`) a round reads 256 entries; otherwise it reads what is still
-- missing plus a few (a deleted post leaves its id in the list until it
-- is trimmed), so a first page of 50 is usually one LRANGE of 58 and one
-- MGET.
-- Returns revoked, cursor, id1, body1, id2, body2, ... newest first, where
-- revoked is revoked:<uid> (nil when unset): the gateway checks the
-- caller's token against it with the same round trip (limit 0 reads only
-- that). cursor is 0 without `after`; with it, 1 when it was found and
-- nothing newer remains above the page, 2 when it was found and newer
-- entries remain, 3 when it is not in the list.
local prefix, uid, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local before, after = ARGV[4] or '', ARGV[5] or ''
local feed = prefix .. '@FP_KEY_FEED@' .. uid
local revoked = redis.call('GET', prefix .. '@FP_KEY_REVOKED@' .. uid)

-- The first `want` of ids (from index i, by step +1 or -1) whose post
-- exists, as {id, body} pairs in walking order.
local function pick(ids, i, step, want)
    local got = {}
    while #got < want and i >= 1 and i <= #ids do
        local batch, keys = {}, {}
        local size = math.min(256, want - #got + 8)
        while #batch < size and i >= 1 and i <= #ids do
            batch[#batch + 1] = ids[i]
            keys[#keys + 1] = prefix .. '@FP_KEY_POST@' .. ids[i]
            i = i + step
        end
        local bodies = redis.call('MGET', unpack(keys))
        for k = 1, #batch do
            if bodies[k] and #got < want then
                got[#got + 1] = {batch[k], bodies[k]}
            end
        end
    end
    return got
end

if after ~= '' then
    local ids, seen, found, start = {}, {}, false, 0
    while not found do
        local page = redis.call('LRANGE', feed, start, start + 255)
        if #page == 0 then
            break
        end
        for _, id in ipairs(page) do
            if id == after then
                found = true
                break
            end
            if not seen[id] then
                seen[id] = true
                ids[#ids + 1] = id
            end
        end
        start = start + #page
    end
    local out = {revoked, 3}
    if not found then
        for _, p in ipairs(pick(ids, 1, 1, limit)) do
            out[#out + 1] = p[1]
            out[#out + 1] = p[2]
        end
        return out
    end
    -- Upwards from the entry just above `after`: one more than the page.
    local got = pick(ids, #ids, -1, limit + 1)
    local n = math.min(limit, #got)
    out[2] = 1
    if #got > limit then
        out[2] = 2
    end
    for k = n, 1, -1 do
        out[#out + 1] = got[k][1]
        out[#out + 1] = got[k][2]
    end
    return out
end

local out, seen, n = {revoked, 0}, {}, 0
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

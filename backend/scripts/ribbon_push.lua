-- ribbon_push.lua - put one entry into the ribbon, newest "at" first, one
-- entry per user, and return the ribbon.
--
-- KEYS[1]: the ribbon list; KEYS[2]: its version (a counter).
-- ARGV: user id, entry JSON, entry "at" (ms), ribbon length.
--
-- Entries of the same user are removed, the entry goes in before the
-- first entry with an older "at" (at the head for a new push; further
-- down for a late event, past the end for one older than a full ribbon),
-- the list is trimmed to the ribbon length, and the version rises: to
-- Redis's clock in milliseconds, or by one if it is there already. So it
-- rises even when Redis lost the last changes (a failover, a restore):
-- the clock has gone on meanwhile. If the ribbon already holds an entry
-- of that user with the same or a later "at", the push is ignored: a
-- redelivered or late event never moves or replaces what that user said
-- then or later. Entries that are not JSON objects are dropped; an entry
-- without a numeric "at" counts as older than any. Returns {version, the list newest first}: the
-- version names that list, so that of two ribbons published by different
-- bridges the newer one wins (bridge.md). An ignored push raises it too
-- when it dropped entries (the list changed) or the counter was lost
-- (its list must not go out as version 0, the lowest of all).
local key, vkey, uid, entry = KEYS[1], KEYS[2], ARGV[1], ARGV[2]
local at, len = tonumber(ARGV[3]), tonumber(ARGV[4])

local function raise()
    local t = redis.call('TIME')
    local version = math.max((tonumber(redis.call('GET', vkey)) or 0) + 1,
        tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
    redis.call('SET', vkey, string.format('%d', version))
    return version
end

local same, dropped, before = {}, false, nil
for _, raw in ipairs(redis.call('LRANGE', key, 0, -1)) do
    local ok, e = pcall(cjson.decode, raw)
    if not ok or type(e) ~= 'table' then
        redis.call('LREM', key, 0, raw)
        dropped = true
    elseif e.user_id == uid then
        if type(e.at) == 'number' and e.at >= at then
            local version = tonumber(redis.call('GET', vkey))
            if dropped or version == nil then
                version = raise()
            end
            return {version, redis.call('LRANGE', key, 0, -1)}
        end
        same[#same + 1] = raw
    elseif not before and (type(e.at) ~= 'number' or e.at < at) then
        before = raw
    end
end
for _, raw in ipairs(same) do
    redis.call('LREM', key, 0, raw)
end
if before then
    redis.call('LINSERT', key, 'BEFORE', before, entry)
else
    redis.call('RPUSH', key, entry)
end
redis.call('LTRIM', key, 0, len - 1)
return {raise(), redis.call('LRANGE', key, 0, -1)}

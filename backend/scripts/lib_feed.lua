-- lib_feed.lua - feeds as sorted sets; pasted into the scripts that write
-- or read feeds by "--! include" (never loaded on its own).
--
-- A feed (feed:<uid>, and posts:<author> of a pull author) is a sorted
-- set: member = post id, score = the sequence number it was written with
-- (INCR post_seq: the post's own when it is first fanned out, a fresh one
-- per slice of a big post's later writes), so that feeds and the posts of
-- pull authors merge in one order. It holds at most feed_length
-- entries: the lowest scores are trimmed.

-- feed_upgrade(key) turns a feed still stored as a list (releases before
-- sequence numbers) into a sorted set in place: the list's newest entry
-- gets score -1, the next -2 and so on, below every sequence number, in
-- the list's order; an id listed twice keeps its newest place.
local function feed_upgrade(key)
    if redis.call('TYPE', key)['ok'] ~= 'list' then
        return
    end
    local ids = redis.call('LRANGE', key, 0, -1)
    redis.call('DEL', key)
    local seen, args = {}, {}
    for i, id in ipairs(ids) do
        if not seen[id] then
            seen[id] = true
            args[#args + 1] = -i
            args[#args + 1] = id
        end
        if #args >= 1000 or (i == #ids and #args > 0) then
            redis.call('ZADD', key, unpack(args))
            args = {}
        end
    end
end

-- True when a redis.pcall() reply is an error.
local function feed_failed(r)
    return type(r) == 'table' and r['err'] ~= nil
end

-- feed_bad_new() is an empty record of the feed keys a script found
-- holding another type (a string, a hash...: not written by feedpush):
-- {count, first key}. feed_add and feed_rem leave such a key alone and
-- note it there, so that one foreign key costs its own user the post and
-- nobody else; the script's reply carries the record for the caller to
-- log.
local function feed_bad_new()
    return {0}
end

-- feed_bad_note(bad, key, r) notes key in bad when the error reply r
-- says it holds another type; any other error (READONLY, OOM, NOPERM...)
-- is raised, as redis.call would: the script fails, nothing is hidden.
local function feed_bad_note(bad, key, r)
    if not string.find(r['err'], 'WRONGTYPE', 1, true) then
        error(r)
    end
    bad[1] = bad[1] + 1
    if bad[1] == 1 then
        bad[2] = key
    end
end

-- feed_add(key, seq, id, len, bad) adds id with score seq (unless it is
-- there: a redelivery keeps its place) and trims the feed to len (two
-- calls: the trim finds nothing to remove in O(log n) when short).
-- Returns 1 when id was added, 0 when it was there or when the key holds
-- another type (then noted in bad, and nothing written); another error
-- is raised.
local function feed_add(key, seq, id, len, bad)
    local added = redis.pcall('ZADD', key, 'NX', seq, id)
    if feed_failed(added) then
        feed_upgrade(key)
        added = redis.pcall('ZADD', key, 'NX', seq, id)
        if feed_failed(added) then
            feed_bad_note(bad, key, added)
            return 0
        end
    end
    redis.call('ZREMRANGEBYRANK', key, 0, -len - 1)
    return added
end

-- feed_score(key, id): id's score in the feed, as a string of digits,
-- or nil (not there; a feed still in the old list form has none).
local function feed_score(key, id)
    local s = redis.pcall('ZSCORE', key, id)
    if type(s) ~= 'string' then
        return nil
    end
    return string.match(s, '^(%d+)$')
end

-- feed_rem(key, id, bad, span) removes id from the feed; a key of another
-- type is noted in bad and left alone. span, when given, is raised to
-- the score id had there: {hi = number}, for gone_raise_top.
local function feed_rem(key, id, bad, span)
    local s = span and tonumber(feed_score(key, id) or '')
    if s and (not span.hi or s > span.hi) then
        span.hi = s
    end
    if feed_failed(redis.pcall('ZREM', key, id)) then
        feed_upgrade(key)
        local r = redis.pcall('ZREM', key, id)
        if feed_failed(r) then
            feed_bad_note(bad, key, r)
        end
    end
end

-- fanout_top_set(prefix, id, marker_key, seq): seq, the number a write
-- of the post just took from post_seq (above any earlier one), becomes
-- fanout_top:<id>, for as long as the marker lives; nothing when the
-- marker has no time left.
local function fanout_top_set(prefix, id, marker_key, seq)
    local ttl = redis.call('PTTL', marker_key)
    if ttl > 0 then
        redis.call('SET', prefix .. '@FP_KEY_FANOUT_TOP@' .. id, seq, 'PX', ttl)
    end
end

-- gone_raise_top(prefix, id, span, px): after a delete took id off feeds
-- where it stood at scores up to span.hi (feed_rem), fanout_top:<id> is
-- raised to hi when that is above it and above gone:<id>, and then lasts
-- px ms (the tombstone's life): a `before` cursor at the post pages on
-- below it (feed_read.lua). For a big post that outlived its marker,
-- fanout_top:<id> went with the marker, and the post's own number (from
-- the author's lists, if they still hold it) is below the slice numbers
-- its followers' entries carry: paging below it would skip what a slice
-- wrote between. A reader whose own entry was trimmed already (so not
-- seen here) has nothing below it left to skip. No lower bound is taken
-- from the feeds: another reader's entry may stand above this reader's,
-- and an `after` cursor placed there would skip what lies between; with
-- no gone:<id>, `after` treats the id as unknown (the newest page).
local function gone_raise_top(prefix, id, span, px)
    if not span.hi or px <= 0 then
        return
    end
    local gone = tonumber(redis.call('GET', prefix .. '@FP_KEY_GONE@' .. id) or '')
    local top_key = prefix .. '@FP_KEY_FANOUT_TOP@' .. id
    local top = tonumber(redis.call('GET', top_key) or '')
    if (not gone or span.hi > gone) and (not top or span.hi > top) then
        redis.call('SET', top_key, string.format('%d', span.hi), 'PX', px)
    end
end

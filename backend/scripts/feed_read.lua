-- feed_read.lua - the ids of one stretch of a feed, with the pull
-- authors' posts merged in; the gateway reads their bodies with MGET
-- (store_read.c), so that no body passes through Lua.
--
-- ARGV: prefix, user id, size (>= 0: how many ids to return at most),
-- mode, arg. The modes:
--   new     the newest ids (arg unused)
--   before  the ids below post arg's score, newest first
--   after   the ids above post arg's score, oldest first
--   below   the ids below the score bound arg ('(<score>'), newest first
--   above   the ids above the score bound arg ('(<score>'), oldest first
-- Keys (built from the prefix): revoked:<uid>, feed:<uid>,
-- following:<uid>, pull_authors, posts:<author> of the pull authors the
-- user follows.
--
-- The sources are feed:<uid> and posts:<a> of every a in following:<uid>
-- ∩ pull_authors (hybrid push/pull, docs/bridge.md "Big fan-outs"). All
-- are sorted sets scored by sequence number, so a stretch is the next
-- `size` entries of their merge by score, each id once. Ids whose post is
-- gone (deleted or expired) are still listed: the caller skips them when
-- MGET finds no body, and asks for the next stretch from `last`.
--
-- A feed still stored as a list (an older release) is turned into a
-- sorted set first (lib_feed.lua); otherwise read-only.
--
-- Returns revoked, cursor, last, id1, id2, ... where revoked is
-- revoked:<uid> (nil when unset: the gateway checks the caller's token
-- with the same round trip; size 0 reads only that). cursor
-- is 3 when the post of mode before or after is in no source (before:
-- nothing follows; after: the ids are those of mode new), else 0. last is
-- '' when the merge had no more than these ids, else the bound ('(' and
-- the score of the last id) that continues it in mode below or above.
-- Cost: one range read per source (with scores only when there are pull
-- authors to merge), and a ZSCORE for `last` or the cursor.
--! include lib_feed.lua

local prefix, uid, size = ARGV[1], ARGV[2], tonumber(ARGV[3])
local mode, arg = ARGV[4], ARGV[5] or ''
local feed = prefix .. '@FP_KEY_FEED@' .. uid
local revoked = redis.call('GET', prefix .. '@FP_KEY_REVOKED@' .. uid)
if size == 0 then
    return {revoked, 0, ''}
end

feed_upgrade(feed)
local sources = {feed}
local pulled = redis.call('SINTER', prefix .. '@FP_KEY_FOLLOWING@' .. uid, prefix .. '@FP_KEY_PULL@')
for _, author in ipairs(pulled) do
    sources[#sources + 1] = prefix .. '@FP_KEY_POSTS@' .. author
end

-- The score of id in the first source that holds it, as Redis wrote it
-- (a string), or nil.
local function score_of(id)
    for _, src in ipairs(sources) do
        local s = redis.call('ZSCORE', src, id)
        if s then
            return s
        end
    end
    return nil
end

-- Up to `size` entries of src beyond `bound` (a score bound as
-- ZRANGEBYSCORE takes it, '+inf'/'-inf' or '(<score>'), newest first when
-- desc, else oldest first; with their scores (id1, score1, ...) when
-- scores is set.
local function range(src, desc, bound, scores)
    local cmd, far = 'ZRANGEBYSCORE', '+inf'
    if desc then
        cmd, far = 'ZREVRANGEBYSCORE', '-inf'
    end
    if scores then
        return redis.call(cmd, src, bound, far, 'WITHSCORES', 'LIMIT', 0, size)
    end
    return redis.call(cmd, src, bound, far, 'LIMIT', 0, size)
end

-- The next `size` entries beyond `bound` of all sources merged, in order,
-- each id once, appended to out; and the bound after the last one, or ''
-- when the merge had no more. Each source is asked for `size` entries:
-- the first `size` of their merge are then in their final order (an entry
-- a source did not return ranks after its `size` returned ones). The
-- scores within one source are distinct (one sequence number per post and
-- feed), so a single source's range is already in order, with no sort.
local function stretch(desc, bound, out)
    if #sources == 1 then
        local r = range(sources[1], desc, bound, false)
        for i = 1, #r do
            out[#out + 1] = r[i]
        end
        if #r < size then
            return ''
        end
        return '(' .. redis.call('ZSCORE', sources[1], r[#r])
    end
    local cand = {}
    for _, src in ipairs(sources) do
        local r = range(src, desc, bound, true)
        for i = 1, #r, 2 do
            cand[#cand + 1] = {r[i], tonumber(r[i + 1]), r[i + 1]}
        end
    end
    table.sort(cand, function(x, y)
        if x[2] ~= y[2] then
            return (x[2] > y[2]) == desc
        end
        return x[1] < y[1]
    end)
    local take, seen = math.min(size, #cand), {}
    for k = 1, take do
        local id = cand[k][1]
        if not seen[id] then
            seen[id] = true
            out[#out + 1] = id
        end
    end
    if #cand < size then
        return ''
    end
    return '(' .. cand[take][3]
end

local out = {revoked, 0, ''}
if mode == 'new' then
    out[3] = stretch(true, '+inf', out)
elseif mode == 'below' or mode == 'above' then
    out[3] = stretch(mode == 'below', arg, out)
elseif mode == 'before' or mode == 'after' then
    local s = score_of(arg)
    if not s then
        out[2] = 3
        if mode == 'after' then
            out[3] = stretch(true, '+inf', out)
        end
    else
        out[3] = stretch(mode == 'before', '(' .. s, out)
    end
else
    return redis.error_reply('feed_read: unknown mode ' .. tostring(mode))
end
return out

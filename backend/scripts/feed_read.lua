-- feed_read.lua - one page of a feed: the newest posts whose body still
-- exists, or the ones newer than a given entry, with the posts of the
-- pull authors the user follows merged in.
--
-- ARGV: prefix, user id, limit (>= 0), before ('' for the newest page,
-- else a post id: the page starts after that entry), after ('' or a post
-- id: the page holds entries newer than that one). At most one of before
-- and after is set (the caller checks).
-- Keys (built from the prefix): revoked:<uid>, feed:<uid>,
-- following:<uid>, pull_authors, posts:<author> of the pull authors the
-- user follows, post:<id> of the ids read.
--
-- The sources are feed:<uid> and posts:<a> of every a in following:<uid>
-- ∩ pull_authors (hybrid push/pull, docs/bridge.md "Big fan-outs"). All
-- are sorted sets scored by sequence number, so the page is their merge by
-- score, newest first, each id once, skipping ids whose post:<id> is gone
-- (deleted). With `before`, the page holds the entries below that id's
-- score; when it is in no source the page is empty. With `after`, the page
-- is the `limit` entries nearest above it (the oldest of the newer ones),
-- so that the page's newest id is the cursor of the next call; one more is
-- looked for to tell whether newer ones remain above the page. When that
-- id is in no source, the page is the newest one, as without a cursor.
--
-- A feed still stored as a list (an older release) is turned into a
-- sorted set first (lib_feed.lua); otherwise read-only.
--
-- Cost: per round, one range read per source and one MGET; a round asks
-- each source for what is still missing plus a few (a deleted post leaves
-- its id until it is trimmed), so a first page of 50 is usually one round.
-- Returns revoked, cursor, id1, body1, id2, body2, ... newest first, where
-- revoked is revoked:<uid> (nil when unset): the gateway checks the
-- caller's token against it with the same round trip (limit 0 reads only
-- that). cursor is 0 without `after`; with it, 1 when it was found and
-- nothing newer remains above the page, 2 when it was found and newer
-- entries remain, 3 when it is in no source.
--! include lib_feed.lua

local prefix, uid, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local before, after = ARGV[4] or '', ARGV[5] or ''
local feed = prefix .. '@FP_KEY_FEED@' .. uid
local revoked = redis.call('GET', prefix .. '@FP_KEY_REVOKED@' .. uid)
if limit == 0 and after == '' then
    return {revoked, 0}
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
-- desc, else oldest first: id1, score1, id2, score2, ...
local function range(src, desc, bound, size)
    if desc then
        return redis.call('ZREVRANGEBYSCORE', src, bound, '-inf', 'WITHSCORES', 'LIMIT', 0, size)
    end
    return redis.call('ZRANGEBYSCORE', src, bound, '+inf', 'WITHSCORES', 'LIMIT', 0, size)
end

-- The next `size` entries beyond `bound` of all sources merged, in order:
-- a list of ids and the score (as Redis wrote it) of the last one, or nil
-- when none is left. Each source is asked for `size` entries: the first
-- `size` of their merge are then in their final order (an entry a source
-- did not return ranks after its `size` returned ones). The scores within
-- one source are distinct (one sequence number per post and feed), so a
-- single source's range is already the answer, with no sort.
local function next_ids(desc, bound, size)
    local ids = {}
    if #sources == 1 then
        local r = range(sources[1], desc, bound, size)
        for i = 1, #r, 2 do
            ids[#ids + 1] = r[i]
        end
        return ids, r[#r]
    end
    local cand = {}
    for _, src in ipairs(sources) do
        local r = range(src, desc, bound, size)
        for i = 1, #r, 2 do
            cand[#cand + 1] = {r[i], tonumber(r[i + 1]), r[i + 1]}
        end
    end
    if #cand == 0 then
        return ids, nil
    end
    table.sort(cand, function(x, y)
        if x[2] ~= y[2] then
            return (x[2] > y[2]) == desc
        end
        return x[1] < y[1]
    end)
    local take = math.min(size, #cand)
    for k = 1, take do
        ids[k] = cand[k][1]
    end
    return ids, cand[take][3]
end

-- Up to `want` {id, body} of existing posts beyond `bound`, merged from
-- all sources, newest first when desc, else oldest first; a round reads
-- what is still missing plus a few, and the next starts after its last
-- entry. An id in two sources (a pull author's post also pushed before
-- the author crossed the threshold) is taken once.
local function collect(desc, bound, want)
    local got, seen = {}, {}
    while #got < want do
        local size = want - #got + 8
        local cand, last = next_ids(desc, bound, size)
        if last == nil then
            break
        end
        local ids, keys = {}, {}
        for _, id in ipairs(cand) do
            if not seen[id] then
                seen[id] = true
                ids[#ids + 1] = id
                keys[#keys + 1] = prefix .. '@FP_KEY_POST@' .. id
            end
        end
        if #keys > 0 then
            local bodies = redis.call('MGET', unpack(keys))
            for k = 1, #keys do
                if bodies[k] and #got < want then
                    got[#got + 1] = {ids[k], bodies[k]}
                end
            end
        end
        bound = '(' .. last
    end
    return got
end

local out = {revoked, 0}
local got
if after ~= '' then
    local s = score_of(after)
    if s then
        got = collect(false, '(' .. s, limit + 1)
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
    out[2] = 3
    got = collect(true, '+inf', limit)
elseif before ~= '' then
    local s = score_of(before)
    if not s then
        return out
    end
    got = collect(true, '(' .. s, limit)
else
    got = collect(true, '+inf', limit)
end
for _, p in ipairs(got) do
    out[#out + 1] = p[1]
    out[#out + 1] = p[2]
end
return out

-- feed_read.lua - the ids of one stretch of a feed, with the pull
-- authors' posts merged in; the gateway reads their bodies with MGET
-- (store_read.c), so that no body passes through Lua.
--
-- ARGV: prefix, user id, size (>= 0: how many ids to return at most),
-- mode, arg, cap (the bridges' feed_length, for gap_above). The modes:
--   new     the newest ids (arg unused)
--   before  the ids below post arg's score, newest first
--   after   the ids above post arg's score, oldest first
--   below   the ids below the score bound arg ('(<score>'), newest first
--   above   the ids above the score bound arg ('(<score>'), oldest first
-- Keys (built from the prefix): revoked:<uid>, feed:<uid>,
-- following:<uid>, pull_authors, posts:<author> of the pull authors the
-- user follows; for a cursor in none of them, fanout:<id>, gone:<id> and
-- (before) fanout_top:<id>.
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
-- is 3 when the post of mode before or after is in no source and its
-- sequence number is unknown (score_of), or (after) when a source may
-- have lost posts above it to trimming (gap_above) (before: nothing
-- follows; after: the ids are those of mode new), else 0. last is '' when the merge had no more than these ids, else the
-- bound ('(' and the score of the last id) that continues it in mode
-- below or above.
-- Cost: one range read of `size` for a lone feed (and a ZSCORE for
-- `last`); with pull authors, at most about twice `size` entries plus
-- FIRST_READ per source, read a few at a time. A cursor costs a ZSCORE
-- per source at most (and two GETs when it is in none, three for mode
-- before), and mode after a
-- ZCARD per source more (and a ZRANGE of one entry for each full one).
--! include lib_feed.lua

local prefix, uid, size = ARGV[1], ARGV[2], tonumber(ARGV[3])
local mode, arg, cap = ARGV[4], ARGV[5] or '', tonumber(ARGV[6]) or 1000
local feed = prefix .. '@FP_KEY_FEED@' .. uid
local revoked = redis.call('GET', prefix .. '@FP_KEY_REVOKED@' .. uid)
if size == 0 then
    return {revoked, 0, ''}
end

feed_upgrade(feed)
-- The user's own feed of another type (not written by feedpush: the
-- bridges leave it alone, lib_feed.lua) is left out as a pulled author's
-- is below: the pulled posts are read, and the revocation check that
-- rides on this call still answers.
local sources = {}
local feed_type = redis.call('TYPE', feed)['ok']
if feed_type == 'zset' or feed_type == 'none' then
    sources[1] = feed
end
local pulled = redis.call('SINTER', prefix .. '@FP_KEY_FOLLOWING@' .. uid, prefix .. '@FP_KEY_PULL@')
for _, author in ipairs(pulled) do
    -- A key of another type (not written by feedpush) is left out: that
    -- author's pulled posts are missing, every other source is read.
    local key = prefix .. '@FP_KEY_POSTS@' .. author
    local t = redis.call('TYPE', key)['ok']
    if t == 'zset' or t == 'none' then
        sources[#sources + 1] = key
    end
end

-- The score of id in the first source that holds it, as Redis wrote it
-- (a string); else, for a post in none of them any more (deleted, or
-- trimmed out), the sequence number its marker (fanout:<id>) or, once
-- deleted, gone:<id> still holds (they last the marker TTL): its place
-- in the merge all the same. A big post was written into its followers'
-- feeds under its slices' numbers, above its own, so that place is not
-- exact: with high set (a `before` cursor) the highest slice number
-- (fanout_top:<id>) is taken, so that nothing written below the post in
-- this feed is skipped (what came between repeats: clients dedupe),
-- also when the post's own number is unknown (a delete raised it from
-- the feeds it took the post off: post_deleted.lua); else the post's own
-- number (`after`: what came above it repeats, nothing is missed). nil
-- when unknown.
local function score_of(id, high)
    for _, src in ipairs(sources) do
        local s = redis.call('ZSCORE', src, id)
        if s then
            return s
        end
    end
    local m = redis.call('GET', prefix .. '@FP_KEY_FANOUT@' .. id)
    local s
    if m == 'deleted' then
        s = string.match(redis.call('GET', prefix .. '@FP_KEY_GONE@' .. id) or '', '^(%d+)$')
    else
        s = string.match(m or '', '^(%d+) [epl] [ad]$')
    end
    if high then
        local top = string.match(redis.call('GET', prefix .. '@FP_KEY_FANOUT_TOP@' .. id) or '', '^(%d+)$')
        if top and (not s or tonumber(top) > tonumber(s)) then
            s = top
        end
    end
    return s
end

-- Up to n entries of src beyond `bound` (a score bound as ZRANGEBYSCORE
-- takes it, '+inf'/'-inf' or '(<score>'), newest first when desc, else
-- oldest first; with their scores (id1, score1, ...) when scores is set.
local function range(src, desc, bound, scores, n)
    local cmd, far = 'ZRANGEBYSCORE', '+inf'
    if desc then
        cmd, far = 'ZREVRANGEBYSCORE', '-inf'
    end
    if scores then
        return redis.call(cmd, src, bound, far, 'WITHSCORES', 'LIMIT', 0, n)
    end
    return redis.call(cmd, src, bound, far, 'LIMIT', 0, n)
end

-- Entries a source is first read by in a merge; each further read of it
-- doubles, up to `size`.
local FIRST_READ = 16

-- A source in a merge: its entries read so far ({id, number, score as
-- Redis wrote it}), the next one to take, and how to read on.
local function cursor_new(src, desc, bound)
    return {src = src, desc = desc, buf = {}, pos = 1, n = math.min(FIRST_READ, size),
            bound = bound, more = true}
end

-- Reads c's next entries when it has taken all it read; false when the
-- source has no more.
local function cursor_fill(c)
    if c.pos <= #c.buf then
        return true
    end
    if not c.more then
        return false
    end
    local r = range(c.src, c.desc, c.bound, true, c.n)
    c.buf, c.pos = {}, 1
    for i = 1, #r, 2 do
        c.buf[#c.buf + 1] = {r[i], tonumber(r[i + 1]), r[i + 1]}
    end
    c.more = #c.buf == c.n
    if #c.buf > 0 then
        c.bound = '(' .. c.buf[#c.buf][3]
    end
    c.n = math.min(c.n * 2, size)
    return #c.buf > 0
end

-- Does entry x come before entry y in the merge?
local function precedes(x, y, desc)
    if x[2] ~= y[2] then
        return (x[2] > y[2]) == desc
    end
    return x[1] < y[1]
end

-- The heap of cursors, ordered by their next entries (heap[1] first).
local function heap_push(heap, c)
    local i = #heap + 1
    heap[i] = c
    while i > 1 do
        local p = math.floor(i / 2)
        if not precedes(heap[i].buf[heap[i].pos], heap[p].buf[heap[p].pos], c.desc) then
            break
        end
        heap[i], heap[p] = heap[p], heap[i]
        i = p
    end
end

local function heap_pop(heap)
    local top, last = heap[1], heap[#heap]
    heap[#heap] = nil
    if #heap == 0 then
        return top
    end
    heap[1] = last
    local i = 1
    while true do
        local l, r, m = 2 * i, 2 * i + 1, i
        if l <= #heap and precedes(heap[l].buf[heap[l].pos], heap[m].buf[heap[m].pos], top.desc) then
            m = l
        end
        if r <= #heap and precedes(heap[r].buf[heap[r].pos], heap[m].buf[heap[m].pos], top.desc) then
            m = r
        end
        if m == i then
            break
        end
        heap[i], heap[m] = heap[m], heap[i]
        i = m
    end
    return top
end

-- The next `size` entries beyond `bound` of all sources merged, in order,
-- each id once, appended to out; and the bound after the last one, or ''
-- when the merge had no more. The scores within one source are distinct
-- (one sequence number per post and feed), so each source is read in
-- order, a little at a time (FIRST_READ entries, then twice as many at
-- each read), and merged through a heap: a stretch reads at most about
-- twice `size` entries plus FIRST_READ per source, not `size` per
-- source.
local function stretch(desc, bound, out)
    if #sources == 1 then
        local r = range(sources[1], desc, bound, false, size)
        for i = 1, #r do
            out[#out + 1] = r[i]
        end
        if #r < size then
            return ''
        end
        return '(' .. redis.call('ZSCORE', sources[1], r[#r])
    end
    local heap, seen, taken, last = {}, {}, 0, nil
    for _, src in ipairs(sources) do
        local c = cursor_new(src, desc, bound)
        if cursor_fill(c) then
            heap_push(heap, c)
        end
    end
    while taken < size and #heap > 0 do
        local c = heap_pop(heap)
        last = c.buf[c.pos]
        c.pos = c.pos + 1
        taken = taken + 1
        if not seen[last[1]] then
            seen[last[1]] = true
            out[#out + 1] = last[1]
        end
        if taken < size and cursor_fill(c) then
            heap_push(heap, c)
        end
    end
    if taken < size then
        return ''
    end
    return '(' .. last[3]
end

-- Whether posts above score s may be missing from a source: each source
-- is trimmed from its lowest end to `cap` entries, so one that is full
-- (within a tenth of cap: deletes take entries out between two trims)
-- and whose lowest entry is above s may have lost entries above s. A
-- source well below its cap was never trimmed (a young feed, an author
-- pulled only recently): its lowest entry being above s is no gap.
local function gap_above(s)
    local n, full = tonumber(s), cap - math.floor(cap / 10)
    for _, src in ipairs(sources) do
        if redis.call('ZCARD', src) >= full then
            local low = redis.call('ZRANGE', src, 0, 0, 'WITHSCORES')
            if #low == 2 and tonumber(low[2]) > n then
                return true
            end
        end
    end
    return false
end

local out = {revoked, 0, ''}
if mode == 'new' then
    out[3] = stretch(true, '+inf', out)
elseif mode == 'below' or mode == 'above' then
    out[3] = stretch(mode == 'below', arg, out)
elseif mode == 'before' or mode == 'after' then
    local s = score_of(arg, mode == 'before')
    if not s or (mode == 'after' and gap_above(s)) then
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

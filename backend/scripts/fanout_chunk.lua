-- fanout_chunk.lua - one slice of a post's fan-out: push the post onto
-- (or remove it from) the feeds of a slice of its recipients, and find
-- which of them are reached on the nodes the caller names. Called until
-- the slices run out, after post_created.lua or post_deleted.lua.
--
-- ARGV: prefix, post id, author id, feed length, op, cursor, count, last,
--       n_check, n_check node ids, then the slice's recipients when cursor
--       is ''.
--   op: "push" (feed_add), "unpush" (feed_rem) or "route" (no write).
--   cursor: an SSCAN cursor of followers:<author> ("0" to start): the
--       slice is what SSCAN ... COUNT count returns; '' when the slice is
--       given (explicit recipients) and last = "1" on the final one.
-- Keys (built from the prefix): fanout:<id>, fanout_top:<id>, gone:<id>, post_seq,
-- followers:<author>, feed:<uid> of the slice, online:<n> and sessions:<n>
-- of the nodes.
--
-- A push first checks the marker: once it is the tombstone "deleted",
-- nothing more is pushed (the delete overtook the fan-out). A push slice
-- scores its feed entries with a sequence number of its own (INCR
-- post_seq), not the post's: a feed is then ordered as it was written, so
-- a post written into it after a newer one (its slice came later) lands
-- above that one, and a reader catching up with `after` cannot miss it.
-- fanout_top:<id> keeps the highest such number a slice wrote the post
-- under (for the marker's lifetime): a reader's `before` cursor at the
-- post, once it has left a feed, pages on below it (feed_read.lua), not
-- below the post's own number, which would skip what was written between
-- the two. An unpush slice raises fanout_top:<id> to the highest score
-- it took the id off at (gone_raise_top), as post_deleted.lua does.
-- The final slice of a push (the SSCAN cursor back at "0", or last = "1")
-- sets the marker's phase to d, so a redelivered event does not push
-- again. A slice pushed twice (a redelivery after a crash, or an id SSCAN
-- returns twice) changes no feed: feed_add keeps an id where it is, and
-- fanout_top:<id> is raised only by a slice that added the post
-- somewhere (it only takes a sequence number).
--
-- A feed key holding another type is left alone: the slice's other feeds
-- are written, and the reply names it (lib_feed.lua).
--
-- Returns {next cursor ("0" when done), state, {n_bad, first bad key},
-- {node, {uid...}}...}: state 0, or 2 when the post was deleted (nothing
-- done, no targets); or {next cursor, 3, {uid...}}: SSCAN gave more than
-- twice count followers, and nothing was done with them (the caller gives
-- them back as explicit slices, so that no call writes more than twice
-- count feeds).
--! include lib_feed.lua
--! include lib_route.lua

local prefix, id, author = ARGV[1], ARGV[2], ARGV[3]
local feed_len, op, cursor = tonumber(ARGV[4]), ARGV[5], ARGV[6]
local count, last, n_check = ARGV[7], ARGV[8] == '1', tonumber(ARGV[9])
local marker_key = prefix .. '@FP_KEY_FANOUT@' .. id

local marker
if op == 'push' then
    marker = redis.call('GET', marker_key)
    if marker == 'deleted' then
        return {'0', 2}
    end
end

local uids, next_cursor = {}, '0'
if cursor ~= '' then
    local r = redis.call('SSCAN', prefix .. '@FP_KEY_FOLLOWERS@' .. author, cursor, 'COUNT', count)
    next_cursor, uids = r[1], r[2]
    if #uids > 2 * tonumber(count) then
        -- Far more than a slice: a set in a compact encoding (an intset,
        -- up to set-max-intset-entries numeric ids; a listpack from Redis
        -- 7.2) comes whole, whatever COUNT says. The caller writes them in
        -- slices of their own. (A hashtable's SSCAN returns whole buckets,
        -- a few over COUNT: those are written here.)
        return {next_cursor, 3, uids}
    end
    last = next_cursor == '0'
else
    for i = 10 + n_check, #ARGV do
        uids[#uids + 1] = ARGV[i]
    end
end

local seq, added, bad, span = nil, 0, feed_bad_new(), {}
if op == 'push' and #uids > 0 then
    seq = redis.call('INCR', prefix .. '@FP_KEY_SEQ@')
end
for _, uid in ipairs(uids) do
    local feed = prefix .. '@FP_KEY_FEED@' .. uid
    if op == 'push' then
        added = added + feed_add(feed, seq, id, feed_len, bad)
    elseif op == 'unpush' then
        feed_rem(feed, id, bad, span)
    end
end
if op == 'unpush' then
    gone_raise_top(prefix, id, span, redis.call('PTTL', marker_key))
end
if added > 0 then
    fanout_top_set(prefix, id, marker_key, seq)
end
if op == 'push' and last and marker then
    local done = string.gsub(marker, ' a$', ' d')
    redis.call('SET', marker_key, done, 'KEEPTTL')
end

local out = {next_cursor, 0, bad}
for i = 10, 9 + n_check do
    local users = reached(prefix, ARGV[i], uids)
    if #users > 0 then
        out[#out + 1] = {ARGV[i], users}
    end
end
return out

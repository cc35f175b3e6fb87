-- post_deleted.lua - the first call of a delete's fan-out: delete the
-- post, leave the tombstone, take the id off the author's feeds, and name
-- the live nodes. fanout_chunk.lua (op "unpush" or "route") and
-- route_scan.lua do the rest, as for a create.
--
-- ARGV: prefix, post id, author id, marker TTL (s), pull threshold (0:
--       never pull), inline maximum, recipients ("0": the author's
--       followers; "1": explicit, given to fanout_chunk.lua; "2":
--       explicit, ARGV[8..]).
-- Keys (built from the prefix): post:<id>, fanout:<id>, gone:<id>,
-- fanout_top:<id>, followers:<author>,
-- feed:<author>, posts:<author>, nodes, node:<n>, online:<n>, sessions:<n>.
--
-- DEL post:<id>; fanout:<id> becomes the tombstone "deleted" (so a
-- redelivered post.created cannot bring the post back, and a fan-out
-- still pushing it stops), and gone:<id> keeps the sequence number the
-- marker had, for as long, so that the id still names a place in the
-- feeds (a reader's cursor: feed_read.lua; for a post that outlived its
-- marker, the number the author's own lists still hold), and fanout_top:<id> (a big
-- post's highest slice number) is kept as long too; the id leaves
-- feed:<author> and posts:<author>. The highest score the id had in the
-- feeds it leaves here (and in fanout_chunk.lua's slices) raises
-- fanout_top:<id> (gone_raise_top): for a big post that outlived its
-- marker, that is where a `before` cursor at it pages on.
-- The mode says what the caller does with the followers' feeds: p, take
-- the id off each (the author has at most the threshold of followers), or
-- l, leave them (a pull author's posts are not in them; one pushed before
-- the author crossed the threshold stays until trimmed, and reads skip
-- ids without a body). A delete that names the post's explicit
-- recipients (mode e) takes the id off their feeds and is routed to them
-- instead of the followers; one that does not leaves their feeds to be
-- trimmed, and reaches the followers alone.
--
-- With at most "inline maximum" followers, the followers' feeds and the
-- routing are done here whole (phase r in the reply).
--
-- Returns {state, "0", mode, phase, n_followers, {n_bad, first bad key},
-- {node, size, author_here[, {uid...}]}...} (a feed key of another type
-- is left alone and named: lib_feed.lua): state 0 = the body was deleted now, 1 = it
-- was already gone; phase a when the followers' feeds are to be walked.
--! include lib_feed.lua
--! include lib_route.lua

local prefix, id, author, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local threshold, inline_max = tonumber(ARGV[5]), tonumber(ARGV[6])
local source = ARGV[7]
local followers = prefix .. '@FP_KEY_FOLLOWERS@' .. author

local bad = feed_bad_new()
local state = 1
if redis.call('DEL', prefix .. '@FP_KEY_POST@' .. id) == 1 then
    state = 0
end
local marker_key = prefix .. '@FP_KEY_FANOUT@' .. id
local marker = redis.call('GET', marker_key)
local seq = string.match(marker or '', '^(%d+) [epl] [ad]$')
if not marker then
    -- A post older than the marker TTL: its number is still in the
    -- author's own lists (until trimmed out).
    seq = feed_score(prefix .. '@FP_KEY_POSTS@' .. author, id) or
        feed_score(prefix .. '@FP_KEY_FEED@' .. author, id)
end
if seq then
    redis.call('SET', prefix .. '@FP_KEY_GONE@' .. id, seq, 'EX', ttl)
elseif marker == 'deleted' then
    -- A delete handled again: gone:<id> lasts as long as the tombstone
    -- and fanout_top:<id>, whose time starts over below.
    redis.call('EXPIRE', prefix .. '@FP_KEY_GONE@' .. id, ttl)
end
redis.call('EXPIRE', prefix .. '@FP_KEY_FANOUT_TOP@' .. id, ttl)
redis.call('SET', marker_key, 'deleted', 'EX', ttl)
local span = {}
feed_rem(prefix .. '@FP_KEY_FEED@' .. author, id, bad, span)
feed_rem(prefix .. '@FP_KEY_POSTS@' .. author, id, bad, span)

local n = redis.call('SCARD', followers)
local mode, phase = 'p', 'a'
if source ~= '0' then
    mode = 'e'
elseif threshold > 0 and n > threshold then
    mode, phase = 'l', 'd'
end
local uids = inline_uids(source, 8, mode, n, inline_max, followers)
if uids then
    for _, uid in ipairs(uids) do
        feed_rem(prefix .. '@FP_KEY_FEED@' .. uid, id, bad, span)
    end
end
gone_raise_top(prefix, id, span, tonumber(ttl) * 1000)
return begin_reply(state, 0, mode, phase, n, bad, prefix, author, uids)

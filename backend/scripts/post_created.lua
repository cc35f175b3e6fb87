-- post_created.lua - the first call of a post's fan-out: store the post,
-- give it its sequence number, decide how it reaches its recipients, and
-- name the live nodes. fanout_chunk.lua and route_scan.lua do the rest, a
-- bounded slice per call (docs/bridge.md, "Big fan-outs").
--
-- ARGV: prefix, post id, author id, post JSON, feed length, marker TTL (s),
--       recipients ("0": the author's followers; "1": explicit, given to
--       fanout_chunk.lua; "2": explicit, ARGV[11..]), pull threshold (0:
--       never pull), inline maximum, post TTL (s; 0: post:<id> never
--       expires).
-- Keys (built from the prefix): post:<id>, fanout:<id>, fanout_top:<id>, post_seq,
-- followers:<author>, feed:<author>, posts:<author>, pull_authors, nodes,
-- node:<n>, online:<n>, sessions:<n>; feed:<uid> of small fan-outs.
--
-- post:<id> is written only if absent, with the post TTL when there is
-- one (a redelivery after it expired writes it again, for as long).
-- fanout:<id> is the marker "<seq> <mode> <phase>": mode e (explicit
-- recipients), p (pushed to each follower's feed) or l (pulled: the
-- followers are above the threshold, so the post goes to posts:<author>
-- and reads merge it in); phase a while pushes remain, d once they are
-- done. "deleted" is the tombstone post_deleted.lua leaves, and then
-- nothing is stored or routed (the delete overtook a redelivered create).
-- A marker "1" (releases before sequence numbers) is a post whose pushes
-- are done.
--
-- The post goes onto the author's own feed here, and a pulled post onto
-- posts:<author> (the author joins pull_authors); a redelivery writes
-- them again (ZADD NX), so a first call that failed half-way (Redis out
-- of memory) leaves nothing out once it succeeds. A feed key holding
-- another type is left alone and named in the reply (lib_feed.lua). A
-- pushed post with at
-- most "inline maximum" recipients is done here whole: pushes and routing
-- (phase r in the reply), so a small post costs one call.
--
-- Returns {state, seq, mode, phase, n_followers, {n_bad, first bad
-- key}, {node, size, author_here[, {uid...}]}...} (see begin_reply in
-- lib_route.lua): state 0
-- = first delivery, 1 = redelivery, 2 = post already deleted (nothing
-- done, nothing else returned).
--! include lib_feed.lua
--! include lib_route.lua

local prefix, id, author, body = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local feed_len, ttl, source = tonumber(ARGV[5]), ARGV[6], ARGV[7]
local threshold, inline_max = tonumber(ARGV[8]), tonumber(ARGV[9])
local post_ttl = tonumber(ARGV[10])
local marker_key = prefix .. '@FP_KEY_FANOUT@' .. id
local followers = prefix .. '@FP_KEY_FOLLOWERS@' .. author

local bad = feed_bad_new()
local marker = redis.call('GET', marker_key)
if marker == 'deleted' then
    return {2, '0', '', '', 0}
end
local n = redis.call('SCARD', followers)
if post_ttl > 0 then
    redis.call('SET', prefix .. '@FP_KEY_POST@' .. id, body, 'NX', 'EX', post_ttl)
else
    redis.call('SET', prefix .. '@FP_KEY_POST@' .. id, body, 'NX')
end

local state, seq, mode, phase = 1, nil, nil, nil
if marker then
    seq, mode, phase = string.match(marker, '^(%d+) ([epl]) ([ad])$')
    if not seq then
        seq, mode, phase = 0, 'p', 'd'
        if source ~= '0' then
            mode = 'e'
        end
    else
        -- Again (NX: no change when there): a first call that failed
        -- after the marker (a script error is not rolled back) left them
        -- out, and the marker now says it ran.
        if mode == 'l' then
            feed_add(prefix .. '@FP_KEY_POSTS@' .. author, seq, id, feed_len, bad)
        end
        feed_add(prefix .. '@FP_KEY_FEED@' .. author, seq, id, feed_len, bad)
    end
else
    state = 0
    seq = redis.call('INCR', prefix .. '@FP_KEY_SEQ@')
    mode, phase = 'p', 'a'
    if source ~= '0' then
        mode = 'e'
    elseif threshold > 0 and n > threshold then
        mode, phase = 'l', 'd'
        feed_add(prefix .. '@FP_KEY_POSTS@' .. author, seq, id, feed_len, bad)
        redis.call('SADD', prefix .. '@FP_KEY_PULL@', author)
    end
    redis.call('SET', marker_key, seq .. ' ' .. mode .. ' ' .. phase, 'EX', ttl)
    feed_add(prefix .. '@FP_KEY_FEED@' .. author, seq, id, feed_len, bad)
end

-- A small fan-out, whole, in this call. Again after a first call that
-- left it in phase a (a crash before its slices; the post may be small
-- enough now), the feeds are written later than the post's number says:
-- under a fresh number, as a slice writes them (fanout_chunk.lua), and
-- fanout_top:<id> raised to it, so that each feed stays in the order it
-- was written and a reader caught up with `after` does not miss the post.
local uids = inline_uids(source, 11, mode, n, inline_max, followers)
if uids and phase == 'a' then
    local wseq, added = seq, 0
    if state == 1 then
        wseq = redis.call('INCR', prefix .. '@FP_KEY_SEQ@')
    end
    for _, uid in ipairs(uids) do
        added = added + feed_add(prefix .. '@FP_KEY_FEED@' .. uid, wseq, id, feed_len, bad)
    end
    if state == 1 and added > 0 then
        fanout_top_set(prefix, id, marker_key, wseq)
    end
    redis.call('SET', marker_key, seq .. ' ' .. mode .. ' d', 'KEEPTTL')
end
return begin_reply(state, seq, mode, phase, n, bad, prefix, author, uids)

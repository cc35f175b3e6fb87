-- post_created.lua - store one post, push it onto its recipients' feeds
-- exactly once, and compute its realtime targets; one call per post.
--
-- ARGV: prefix, post id, author id, post JSON, feed length, marker TTL (s),
--       "1" when explicit recipients follow (ARGV[8..]) or "0" to use
--       followers:<author>.
-- Keys (built from the prefix): post:<id>, fanout:<id>, followers:<author>,
-- feed:<uid> of every recipient, nodes, node:<n>, online:<n>, sessions:<n>.
--
-- Recipients are the explicit list or the author's followers, plus the
-- author. post:<id> is written only if absent. fanout:<id> marks a post
-- whose pushes are done ("1"), so a redelivered event does not push again;
-- "deleted" is the tombstone post_deleted.lua leaves, and then nothing is
-- stored, pushed or routed (the delete overtook a redelivered create).
--
-- Returns {state, n_recipients, {node, {uid...}}...}: state 0 = first
-- delivery, 1 = redelivery (feeds untouched, targets computed again),
-- 2 = post already deleted (nothing done, no targets).
--! include lib_route.lua

local prefix, id, author, body = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local feed_len, ttl, explicit = tonumber(ARGV[5]), ARGV[6], ARGV[7] == '1'
local marker_key = prefix .. '@FP_KEY_FANOUT@' .. id

local marker = redis.call('GET', marker_key)
if marker == 'deleted' then
    return {2, 0}
end

local rcpt, is_rcpt, add = recipients()
if explicit then
    for i = 8, #ARGV do
        add(ARGV[i])
    end
else
    for _, uid in ipairs(redis.call('SMEMBERS', prefix .. '@FP_KEY_FOLLOWERS@' .. author)) do
        add(uid)
    end
end
add(author)

redis.call('SET', prefix .. '@FP_KEY_POST@' .. id, body, 'NX')
local state = 1
if not marker then
    state = 0
    redis.call('SET', marker_key, '1', 'EX', ttl)
    for _, uid in ipairs(rcpt) do
        local feed = prefix .. '@FP_KEY_FEED@' .. uid
        redis.call('LPUSH', feed, id)
        redis.call('LTRIM', feed, 0, feed_len - 1)
    end
end

return routed_reply(state, prefix, rcpt, is_rcpt)

-- post_deleted.lua - delete a post and compute who gets the realtime
-- delete notification; one call per delete.
--
-- ARGV: prefix, post id, author id, marker TTL (s).
-- Keys (built from the prefix): post:<id>, fanout:<id>, followers:<author>,
-- feed:<uid> of the author and each follower, nodes, node:<n>, online:<n>,
-- sessions:<n>.
--
-- DEL post:<id>; fanout:<id> becomes the tombstone "deleted" (so a
-- redelivered post.created cannot bring the post back); the id is LREM'd
-- from the feeds of the author and the author's followers. Feeds of
-- explicit recipients outside the followers keep the id until it is
-- trimmed away; reads skip ids without a body.
--
-- Returns {state, n_recipients, {node, {uid...}}...}: state 0 = the body
-- was deleted now, 1 = it was already gone.
--! include lib_route.lua

local prefix, id, author, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local state = 1
if redis.call('DEL', prefix .. '@FP_KEY_POST@' .. id) == 1 then
    state = 0
end
redis.call('SET', prefix .. '@FP_KEY_FANOUT@' .. id, 'deleted', 'EX', ttl)

local rcpt, is_rcpt, add = recipients()
for _, uid in ipairs(redis.call('SMEMBERS', prefix .. '@FP_KEY_FOLLOWERS@' .. author)) do
    add(uid)
end
add(author)
for _, uid in ipairs(rcpt) do
    redis.call('LREM', prefix .. '@FP_KEY_FEED@' .. uid, 0, id)
end

return routed_reply(state, prefix, rcpt, is_rcpt)

-- user_revoked.lua - raise a user's revocation cut-off and tell every
-- broker node.
--
-- KEYS[1]: revoked:<uid>.
-- ARGV: channel (<prefix>revoked), user id, before (unix s, decimal).
--
-- revoked:<uid> becomes max(current, before): it is never lowered (a value
-- that is not a number counts as absent). Then "<uid> <value>" is published
-- with the value now in effect, so a redelivered or older event repeats the
-- current cut-off instead of announcing a lower one. Values stay strings
-- (Lua numbers would print 2^53 in exponent form).
-- Returns {raised (1/0), value in effect}.
local key, channel, uid, before = KEYS[1], ARGV[1], ARGV[2], ARGV[3]

local cur = redis.call('GET', key)
local raised = 0
if not cur or not tonumber(cur) or tonumber(cur) < tonumber(before) then
    redis.call('SET', key, before)
    cur = before
    raised = 1
end
redis.call('PUBLISH', channel, uid .. ' ' .. cur)
return {raised, cur}

-- user_revoked.lua - raise a user's revocation cut-off and tell every
-- broker node.
--
-- KEYS[1]: revoked:<uid>.
-- ARGV: channel (<prefix>revoked), user id, before (unix s, decimal),
-- ttl (seconds the key outlives the cut-off in effect; 0: for ever).
--
-- revoked:<uid> becomes max(current, before): it is never lowered. A
-- value that is not what the readers take (plugins, gateways: strtoll of
-- the whole value, a decimal integer below 2^63, leading blanks, a "+"
-- and zeros allowed, no exponent) counts as absent, so the next event
-- repairs a key set by hand to "1e300", "nan" or "0x10" instead of
-- keeping a value they all refuse; one they take is never lowered.
-- Then "<uid> <value>" is published with the value now in effect, so a
-- redelivered or older event repeats the current cut-off instead of
-- announcing a lower one. With a ttl the key expires ttl seconds after
-- the value in effect (EXPIREAT at every event, so a key written before
-- the ttl was set gets one too, and one already past it goes at once);
-- without, an expiry an earlier ttl set is removed. Values stay strings
-- (Lua numbers would print 2^53 in exponent form).
-- Returns {raised (1/0), value in effect}.
local key, channel, uid, before, ttl = KEYS[1], ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])

-- A cut-off the readers take (its number; 19 digits compare right as
-- doubles against a before of at most 2^53), or nil.
local function cutoff(v)
    local d = v and string.match(v, '^%s*%+?0*(%d+)$')
    if not d or #d > 19 or (#d == 19 and d > '9223372036854775807') then
        return nil
    end
    return tonumber(d)
end

local cur = redis.call('GET', key)
local raised = 0
if not cutoff(cur) or cutoff(cur) < tonumber(before) then
    redis.call('SET', key, before)
    cur = before
    raised = 1
end
if ttl > 0 then
    -- pcall: a cut-off so far ahead that no expiry time can follow it
    -- (EXPIREAT refuses a number Lua prints in exponent form) keeps the
    -- key for ever rather than failing the event.
    redis.pcall('EXPIREAT', key, tonumber(cur) + ttl)
else
    -- No ttl (any more): the key is kept for ever from now on.
    redis.call('PERSIST', key)
end
redis.call('PUBLISH', channel, uid .. ' ' .. cur)
return {raised, cur}

-- follow.lua - a follow.created or follow.deleted: both follow sets, in
-- the order the pair's changes were made.
--
-- KEYS[1]: followers:<followee>, KEYS[2]: following:<follower>,
-- KEYS[3]: follow:<follower>:<followee> (a hash: issued, the pair's
-- latest stamp given by follow_stamp.lua; applied, the stamp of the
-- change the sets hold).
-- ARGV: op ('SADD' or 'SREM'), follower, followee, at (the event's
-- stamp, unix ms, decimal; '0': none), ttl (seconds the hash is kept
-- after its last change).
--
-- An event stamped at or below the pair's applied stamp is older than
-- what the sets hold (one delivered again after the pair's next change
-- was applied, or the same event twice): nothing changes. Otherwise both
-- sets change and, stamped, its stamp becomes the applied one. An event
-- without a stamp is applied as it comes and leaves the hash alone.
-- Stamps stay strings (Lua numbers would print 2^53 in exponent form);
-- the comparison is numeric (a stamp is at most 2^53, exact as a double).
-- Returns 1 when applied, 0 when left out as older.
local followers, following, pair = KEYS[1], KEYS[2], KEYS[3]
local op, follower, followee, at, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]

if at ~= '0' then
    local applied = tonumber(redis.call('HGET', pair, 'applied') or '')
    if applied and tonumber(at) <= applied then
        return 0
    end
end
redis.call(op, followers, follower)
redis.call(op, following, followee)
if at ~= '0' then
    redis.call('HSET', pair, 'applied', at)
    redis.call('EXPIRE', pair, ttl)
end
return 1

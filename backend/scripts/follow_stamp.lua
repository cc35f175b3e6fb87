-- follow_stamp.lua - the stamp feed-gateway gives a follow or an unfollow
-- when it takes the request: its order within the pair (follow.lua).
--
-- KEYS[1]: follow:<follower>:<followee> (a hash: issued, applied).
-- ARGV: ttl (seconds the hash is kept after its last change).
--
-- The stamp is the Redis primary's clock in milliseconds (TIME), or one
-- more than the pair's last stamp, given or applied, when the clock is
-- not past it: a pair's stamps only grow, whichever gateway takes the
-- request and however its own clock is set, and stay above a stamp a
-- backend's own clock put on an event applied before. Written as a
-- decimal string (a Lua number past 10^14 would print in exponent form;
-- ms stay below that until the year 5138). Returns the stamp.
local pair, ttl = KEYS[1], ARGV[1]
local t = redis.call('TIME')
local stamp = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, field in ipairs({'issued', 'applied'}) do
    local last = tonumber(redis.call('HGET', pair, field) or '')
    if last and stamp <= last then
        stamp = last + 1
    end
end
redis.call('HSET', pair, 'issued', string.format('%.0f', stamp))
redis.call('EXPIRE', pair, ttl)
return stamp

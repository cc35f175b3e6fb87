-- route_scan.lua - one slice of the routing of a post, walked from the
-- node's side: which of the users reached on a node follow the author.
-- Used when a node reaches fewer users than the author has followers, so
-- that live delivery costs in proportion to the users online, not to the
-- followers (a post of a pull author to 100,000 followers, 1,000 online).
--
-- ARGV: prefix, author id, node id, set ("online" or "sessions"), SSCAN
--       cursor ("0" to start), count.
-- Keys (built from the prefix): online:<node> or sessions:<node>,
-- followers:<author>.
--
-- Returns {next cursor ("0" when done), {uid...}}: the slice's users who
-- follow the author. Read-only.
--! include lib_route.lua
local prefix, author, node, set = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local name = '@FP_KEY_ONLINE@'
if set == 'sessions' then
    name = '@FP_KEY_SESSIONS@'
end
local r = redis.call('SSCAN', prefix .. name .. node, ARGV[5], 'COUNT', ARGV[6])
local users, ids = {}, r[2]
local flags = members(prefix .. '@FP_KEY_FOLLOWERS@' .. author, ids)
for k = 1, #ids do
    if flags[k] == 1 then
        users[#users + 1] = ids[k]
    end
end
return {r[1], users}

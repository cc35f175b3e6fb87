-- lib_route.lua - where the realtime part of a post goes; pasted into the
-- post scripts and route_scan.lua by "--! include" (never loaded on its
-- own).
--
-- A user is reached on a node while listed in online:<node> (connected
-- there) or sessions:<node> (a persistent session there queues for them
-- while they are away). A node is live while its heartbeat key node:<node>
-- exists (the broker plugin refreshes it with a TTL).

-- live_nodes(prefix, author) returns one {node, size, author_here} per
-- live node: size = SCARD online:<node> + SCARD sessions:<node> (what a
-- scan of that node costs), author_here = 1 when the author is reached
-- there. A node listed in `nodes` without a heartbeat is stale: it is
-- removed from `nodes` and its online:<node> and sessions:<node> sets are
-- deleted (stale presence cleanup); a plugin that comes back re-adds all
-- three (heartbeat, and a full presence rewrite on every connect).
local function live_nodes(prefix, author)
    local nodes_key = prefix .. '@FP_KEY_NODES@'
    local out = {}
    for _, node in ipairs(redis.call('SMEMBERS', nodes_key)) do
        local online = prefix .. '@FP_KEY_ONLINE@' .. node
        local sessions = prefix .. '@FP_KEY_SESSIONS@' .. node
        if redis.call('EXISTS', prefix .. '@FP_KEY_NODE@' .. node) == 1 then
            local here = 0
            if redis.call('SISMEMBER', online, author) == 1 or
                redis.call('SISMEMBER', sessions, author) == 1 then
                here = 1
            end
            out[#out + 1] = {node, redis.call('SCARD', online) + redis.call('SCARD', sessions), here}
        else
            redis.call('SREM', nodes_key, node)
            redis.call('UNLINK', online, sessions)
        end
    end
    return out
end

-- members(key, ids) returns SMISMEMBER key ids as one list of flags, asked
-- 1000 at a time (unpack() has a stack limit, and SSCAN may return a whole
-- compact set whatever its COUNT).
local function members(key, ids)
    local flags = {}
    for first = 1, #ids, 1000 do
        local part = redis.call('SMISMEMBER', key, unpack(ids, first, math.min(first + 999, #ids)))
        for k = 1, #part do
            flags[first + k - 1] = part[k]
        end
    end
    return flags
end

-- reached(prefix, node, uids) returns the ids of uids reached on node,
-- each once.
local function reached(prefix, node, uids)
    local users, seen = {}, {}
    for _, name in ipairs({'@FP_KEY_ONLINE@', '@FP_KEY_SESSIONS@'}) do
        local flags = members(prefix .. name .. node, uids)
        for k = 1, #uids do
            if flags[k] == 1 and not seen[uids[k]] then
                seen[uids[k]] = true
                users[#users + 1] = uids[k]
            end
        end
    end
    return users
end

-- inline_uids(source, first, mode, n, inline_max, followers) is who the
-- post scripts' first call fans out to itself: the recipients the call
-- names (source "2", ARGV[first] on), or the n followers (the set at key
-- followers) when there are at most inline_max of them in push mode. nil:
-- the slices do it (fanout_chunk.lua), or there is nobody.
local function inline_uids(source, first, mode, n, inline_max, followers)
    if source == '2' then
        local uids = {}
        for i = first, #ARGV do
            uids[#uids + 1] = ARGV[i]
        end
        return uids
    end
    if mode == 'p' and n <= inline_max then
        return redis.call('SMEMBERS', followers)
    end
    return nil
end

-- begin_reply(state, seq, mode, phase, n, bad, prefix, author, uids) is
-- the reply of the post scripts' first call: {state, seq, mode, phase, n,
-- bad, {node, size, author_here}...}, bad being {count, first key} of the
-- feed keys of another type the call left alone (lib_feed.lua). When uids (all the recipients, a small
-- list) is given, the call routed them too: phase is then r and each node
-- comes as {node, size, author_here, {uid...}} with those reached there.
local function begin_reply(state, seq, mode, phase, n, bad, prefix, author, uids)
    if uids then
        phase = 'r'
    end
    local out = {state, tostring(seq), mode, phase, n, bad}
    for _, node in ipairs(live_nodes(prefix, author)) do
        if uids then
            node[4] = reached(prefix, node[1], uids)
        end
        out[#out + 1] = node
    end
    return out
end

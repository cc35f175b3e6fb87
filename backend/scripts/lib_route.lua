-- lib_route.lua - shared by post_created.lua and post_deleted.lua (pasted
-- in at build time by "--! include"; never loaded on its own).
--
-- recipients() returns an empty recipient list, the same ids as a set
-- (uid -> true), and add(uid), which appends uid unless it is there.
local function recipients()
    local rcpt, is_rcpt = {}, {}
    local function add(uid)
        if not is_rcpt[uid] then
            is_rcpt[uid] = true
            rcpt[#rcpt + 1] = uid
        end
    end
    return rcpt, is_rcpt, add
end

-- node_users(key, rcpt, is_rcpt, users, seen) appends to users the
-- recipients in the set at key that are not in seen yet. The cheaper side
-- is walked: SMEMBERS of a small set checked against is_rcpt, or
-- SMISMEMBER of the recipients in chunks of 1000 (unpack() has a stack
-- limit) when the set is larger.
local function node_users(key, rcpt, is_rcpt, users, seen)
    local size = redis.call('SCARD', key)
    local function found(uid)
        if not seen[uid] then
            seen[uid] = true
            users[#users + 1] = uid
        end
    end
    if size > 0 and size < #rcpt then
        for _, uid in ipairs(redis.call('SMEMBERS', key)) do
            if is_rcpt[uid] then
                found(uid)
            end
        end
    elseif size > 0 then
        for first = 1, #rcpt, 1000 do
            local last = math.min(first + 999, #rcpt)
            local flags = redis.call('SMISMEMBER', key, unpack(rcpt, first, last))
            for k = 1, #flags do
                if flags[k] == 1 then
                    found(rcpt[first + k - 1])
                end
            end
        end
    end
end

-- route(prefix, rcpt, is_rcpt) returns the realtime targets of a post:
-- one {node, {uid, ...}} per live node holding at least one recipient,
-- connected there (online:<node>) or with a persistent session there that
-- queues for it while it is away (sessions:<node>).
-- rcpt is the recipient list, is_rcpt the same ids as a set (uid -> true).
--
-- A node is live while its heartbeat key node:<node> exists (the broker
-- plugin refreshes it with a TTL). A node listed in `nodes` without a
-- heartbeat is stale: it is removed from `nodes` and its online:<node> and
-- sessions:<node> sets are deleted (stale presence cleanup); a plugin that
-- comes back re-adds all three (heartbeat, and a full presence rewrite on
-- every connect).
local function route(prefix, rcpt, is_rcpt)
    local nodes_key = prefix .. '@FP_KEY_NODES@'
    local routes = {}
    for _, node in ipairs(redis.call('SMEMBERS', nodes_key)) do
        local online = prefix .. '@FP_KEY_ONLINE@' .. node
        local sessions = prefix .. '@FP_KEY_SESSIONS@' .. node
        if redis.call('EXISTS', prefix .. '@FP_KEY_NODE@' .. node) == 1 then
            local users, seen = {}, {}
            node_users(online, rcpt, is_rcpt, users, seen)
            node_users(sessions, rcpt, is_rcpt, users, seen)
            if #users > 0 then
                routes[#routes + 1] = {node, users}
            end
        else
            redis.call('SREM', nodes_key, node)
            redis.call('DEL', online, sessions)
        end
    end
    return routes
end

-- routed_reply(state, prefix, rcpt, is_rcpt) is the scripts' reply:
-- {state, #rcpt, route(prefix, rcpt, is_rcpt)...}.
local function routed_reply(state, prefix, rcpt, is_rcpt)
    local result = {state, #rcpt}
    for _, r in ipairs(route(prefix, rcpt, is_rcpt)) do
        result[#result + 1] = r
    end
    return result
end

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

-- route(prefix, rcpt, is_rcpt) returns the realtime targets of a post:
-- one {node, {uid, ...}} per live node holding at least one recipient.
-- rcpt is the recipient list, is_rcpt the same ids as a set (uid -> true).
--
-- A node is live while its heartbeat key node:<node> exists (the broker
-- plugin refreshes it with a TTL). A node listed in `nodes` without a
-- heartbeat is stale: it is removed from `nodes` and its online:<node> set
-- is deleted (stale presence cleanup); a plugin that comes back re-adds
-- both (heartbeat, and a full presence rewrite on every connect).
--
-- Per live node the cheaper side is walked: SMEMBERS of a small online set
-- checked against is_rcpt, or SMISMEMBER of the recipients in chunks of
-- 1000 (unpack() has a stack limit) when the online set is larger.
local function route(prefix, rcpt, is_rcpt)
    local nodes_key = prefix .. '@FP_KEY_NODES@'
    local routes = {}
    for _, node in ipairs(redis.call('SMEMBERS', nodes_key)) do
        local online = prefix .. '@FP_KEY_ONLINE@' .. node
        if redis.call('EXISTS', prefix .. '@FP_KEY_NODE@' .. node) == 1 then
            local users = {}
            local size = redis.call('SCARD', online)
            if size > 0 and size < #rcpt then
                for _, uid in ipairs(redis.call('SMEMBERS', online)) do
                    if is_rcpt[uid] then
                        users[#users + 1] = uid
                    end
                end
            elseif size > 0 then
                for first = 1, #rcpt, 1000 do
                    local last = math.min(first + 999, #rcpt)
                    local flags = redis.call('SMISMEMBER', online, unpack(rcpt, first, last))
                    for k = 1, #flags do
                        if flags[k] == 1 then
                            users[#users + 1] = rcpt[first + k - 1]
                        end
                    end
                end
            end
            if #users > 0 then
                routes[#routes + 1] = {node, users}
            end
        else
            redis.call('SREM', nodes_key, node)
            redis.call('DEL', online)
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

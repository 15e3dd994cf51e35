-- Cache invalidations for the UI's WebSocket (docs/events.md). The host
-- batches them (about 100 ms), drops duplicates and passes them on to every
-- host on the database, so call these after the change committed.
local events = {}

-- emit(type [, id]): "processes" / "subscriptions" with "LIST", a uuid or nil
-- (every entry), "processStatusCounts", "engineStatus".
local CANONICAL = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"

function events.emit(type, id)
  local host = orch._host
  if not (host and host.emit) then -- absent in unit tests without a host
    return
  end
  if id ~= nil and id ~= "LIST" then
    id = tostring(id):lower()
    if not id:match(CANONICAL) then
      id = nil -- another spelling of a uuid: invalidate every entry of the type instead
    end
  end
  host.emit(type, id)
end

-- A process changed: the process lists, its detail, the status counts and
-- (when given) the subscriptions it touched.
function events.process_changed(pid, subscription_ids)
  events.emit("processes", "LIST")
  if pid then
    events.emit("processes", pid)
  end
  events.emit("processStatusCounts")
  if subscription_ids and #subscription_ids > 0 then
    events.emit("subscriptions", "LIST")
    for _, id in ipairs(subscription_ids) do
      events.emit("subscriptions", id)
    end
  end
end

-- A subscription changed: the subscription lists and its own page.
function events.subscription_changed(id)
  events.emit("subscriptions", "LIST")
  events.emit("subscriptions", id)
end

return events

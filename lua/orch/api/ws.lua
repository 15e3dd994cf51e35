-- The WebSocket upgrade (/api/ws/events), put to the policy like a route: the host
-- dispatches it with action "events.read" before the handshake; 204 lets it through.
local api = {}

function api.authorize()
  return 204, nil
end

return api

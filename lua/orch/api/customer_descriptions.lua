-- /api/subscription_customer_descriptions: a customer's own description of a
-- subscription (one per customer and subscription), with the optimistic
-- version check of orchestrator-core (a stale version answers 400).

local http = require("orch.http")
local db = require("orch.db")
local json = require("orch.json")
local ts = require("orch.api.wire").ts

local cd = {}

-- Routes of this module (collected by orch.api.routes; see docs/openapi.md).
local S = require("orch.api.schemas")
cd.routes = {
  { "POST", "/api/subscription_customer_descriptions", "create", action = "subscriptions.write",
    summary = "Add a customer's description of a subscription", body = S.CustomerDescriptionCreate, status = 204 },
  { "PUT", "/api/subscription_customer_descriptions", "update", action = "subscriptions.write",
    summary = "Change a customer description", body = S.CustomerDescriptionUpdate, status = 204 },
  { "GET", "/api/subscription_customer_descriptions/customer/{customer_id}/subscription/{subscription_id}",
    "get_by_customer", action = "subscriptions.read", summary = "A customer's description of a subscription",
    response = S.CustomerDescription },
  { "GET", "/api/subscription_customer_descriptions/{id}", "get", action = "subscriptions.read",
    summary = "One customer description", response = S.CustomerDescription },
  { "DELETE", "/api/subscription_customer_descriptions/{id}", "delete", action = "subscriptions.write",
    summary = "Delete a customer description", status = 204 },
}

local DESCRIPTION_LENGTH = 2000
local COLUMNS = "id::text AS id, description, customer_id, subscription_id::text AS subscription_id, "
  .. ts("created_at") .. " AS created_at, version"

local function check_uuid(id, what)
  if type(id) ~= "string" or not orch.uuid.valid(id) then
    http.raise(422, what .. " is not a valid UUID")
  end
end

local function body_of(req, fields)
  local body = req.json
  if type(body) ~= "table" or json.is_array(body) then
    http.raise(422, "The request body must be a JSON object")
  end
  for _, f in ipairs(fields) do
    local v = body[f]
    if f == "subscription_id" or f == "id" then
      check_uuid(v, f)
    elseif type(v) ~= "string" then
      http.raise(422, f .. " is required and must be a string")
    end
  end
  if #body.description > DESCRIPTION_LENGTH then
    http.raise(422, "description: at most " .. DESCRIPTION_LENGTH .. " characters")
  end
  return body
end

-- The descriptions of one subscription (for the domain-model answer).
function cd.of_subscription(id)
  return json.array(db.must("SELECT " .. COLUMNS .. [[ FROM subscription_customer_descriptions
    WHERE subscription_id = $1::uuid ORDER BY customer_id]], id))
end

-- POST / {customer_id, subscription_id, description} -> 204
function cd.create(req)
  local body = body_of(req, { "customer_id", "subscription_id", "description" })
  if not db.one("SELECT 1 AS x FROM subscriptions WHERE subscription_id = $1::uuid", body.subscription_id) then
    http.raise(404, "Subscription with id: " .. body.subscription_id .. ", not found")
  end
  local rows, err = db.query([[INSERT INTO subscription_customer_descriptions (customer_id, subscription_id,
    description) VALUES ($1, $2::uuid, $3)]], body.customer_id, body.subscription_id, body.description)
  if not rows then
    if err.sqlstate == "23505" then
      http.raise(409, "Customer " .. body.customer_id .. " already has a description of subscription "
        .. body.subscription_id)
    end
    error("database: " .. err.message, 0)
  end
  require("orch.events").subscription_changed(body.subscription_id) -- the UI's pages (docs/events.md)
  return 204
end

-- PUT / {id, customer_id, subscription_id, description, created_at?, version?} -> 204
-- (created_at as an ISO string or as the epoch seconds GET answers with)
function cd.update(req)
  local body = body_of(req, { "id", "customer_id", "subscription_id", "description" })
  local version = body.version
  if version ~= nil and version ~= json.null and math.type(version) ~= "integer" then
    http.raise(422, "version must be an integer")
  end
  local created_at = body.created_at
  local kind = type(created_at)
  if created_at ~= nil and created_at ~= json.null and kind ~= "string" and kind ~= "number" then
    http.raise(422, "created_at must be a date-time string or epoch seconds")
  end
  -- epoch seconds (what GET answers) as text with every digit, for to_timestamp
  local created_epoch = type(created_at) == "number" and string.format("%.17g", created_at) or nil
  db.transaction(function()
    local row = db.one([[SELECT id, version FROM subscription_customer_descriptions
      WHERE customer_id = $1 AND subscription_id = $2::uuid FOR UPDATE]], body.customer_id, body.subscription_id)
    if not row then
      return -- as core: nothing to update
    end
    if math.type(version) == "integer" and version ~= row.version then
      http.raise(400, string.format("Stale data: given version (%d) does not match the current version (%d)",
        version, row.version))
    end
    local ok, err = db.query([[UPDATE subscription_customer_descriptions
      SET description = $2, created_at = coalesce($3::timestamptz, to_timestamp($4::float8), created_at)
      WHERE id = $1::uuid]], row.id, body.description, type(created_at) == "string" and created_at or nil,
      created_epoch)
    if not ok then
      if err.sqlstate and err.sqlstate:sub(1, 2) == "22" then
        http.raise(422, "created_at is not a valid date-time")
      end
      error("database: " .. err.message, 0)
    end
  end)
  require("orch.events").subscription_changed(body.subscription_id)
  return 204
end

function cd.delete(req)
  check_uuid(req.params.id, "id")
  local rows = db.must([[DELETE FROM subscription_customer_descriptions WHERE id = $1::uuid
    RETURNING subscription_id::text]], req.params.id)
  if rows[1] then
    require("orch.events").subscription_changed(rows[1].subscription_id)
  end
  return 204
end

function cd.get(req)
  check_uuid(req.params.id, "id")
  local row = db.one("SELECT " .. COLUMNS .. " FROM subscription_customer_descriptions WHERE id = $1::uuid",
    req.params.id)
  if not row then
    http.raise(404, "Customer description " .. req.params.id .. " not found")
  end
  return 200, row
end

function cd.get_by_customer(req)
  check_uuid(req.params.subscription_id, "subscription_id")
  local row = db.one("SELECT " .. COLUMNS .. [[ FROM subscription_customer_descriptions
    WHERE customer_id = $1 AND subscription_id = $2::uuid]], req.params.customer_id, req.params.subscription_id)
  if not row then
    http.raise(404, "Customer description not found")
  end
  return 200, row
end

return cd

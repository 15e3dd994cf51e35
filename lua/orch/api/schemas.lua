-- JSON Schemas (2020-12, as OpenAPI 3.1 uses them) of the REST bodies and answers.
-- Route declarations (`<module>.routes` in lua/orch/api/) refer to them; the
-- OpenAPI document (orch.api.openapi) publishes them under components.schemas,
-- and tests validate real answers against them, so a change of an answer's
-- shape that is not written here fails a test.
--
-- S.Name is a {"$ref"} to the component Name; S.array, S.nullable, S.object
-- build the rest.

local S = { components = {} }

local function def(name, schema)
  S.components[name] = schema
  S[name] = { ["$ref"] = "#/components/schemas/" .. name }
  return S[name]
end

function S.array(items)
  return { type = "array", items = items }
end

function S.nullable(schema)
  return { anyOf = { schema, { type = "null" } } }
end

-- An object with these properties; `required` lists the keys always present.
function S.object(properties, required, extra)
  local o = { type = "object", properties = properties }
  if required and #required > 0 then
    o.required = required
  end
  for k, v in pairs(extra or {}) do
    o[k] = v
  end
  return o
end

local str, int, bool = { type = "string" }, { type = "integer" }, { type = "boolean" }
local any_object = { type = "object" }
local nstr = S.nullable(str)
S.string, S.integer, S.boolean, S.any_object = str, int, bool, any_object

-- A moment of time in a REST answer: every REST timestamp field refers to this one definition.
-- orchestrator-core encodes datetimes as epoch seconds (a float), and so do we (docs/rest.md).
def("Timestamp", { type = "number", description = "A moment of time: seconds since 1970-01-01 UTC." })
local ts, nts = S.Timestamp, S.nullable(S.Timestamp)

def("Problem", S.object({ detail = {}, status = int, title = str }, { "detail", "status", "title" },
  { description = "A problem detail (RFC 9457 shape): every error answer." }))

def("UUID", { type = "string", format = "uuid" })
local uuid = S.UUID

-- ---- catalogue ----
def("ResourceTypeSchema", S.object({ resource_type_id = uuid, resource_type = str, description = nstr },
  { "resource_type_id", "resource_type" }))
def("ProductBlockSchema", S.object({
  product_block_id = uuid, name = str, description = str, tag = nstr, status = nstr,
  created_at = ts, end_date = nts, resource_types = S.array(S.ResourceTypeSchema),
}, { "product_block_id", "name", "description", "created_at" }))
def("FixedInputSchema", S.object({ fixed_input_id = uuid, name = str, value = str, product_id = uuid,
  created_at = ts }, { "fixed_input_id", "name", "value", "product_id" }))
def("StepSchema", S.object({ name = str, assignee = str }, { "name" }))
def("WorkflowSchema", S.object({
  workflow_id = uuid, name = str, target = str, is_task = bool, description = nstr, created_at = ts,
  steps = S.nullable(S.array(S.StepSchema)),
}, { "workflow_id", "name", "target", "is_task", "created_at" }))
def("ProductSchema", S.object({
  product_id = uuid, name = str, description = str, product_type = str, status = str, tag = str,
  created_at = ts, end_date = nts, product_blocks = S.array(S.ProductBlockSchema),
  fixed_inputs = S.array(S.FixedInputSchema), workflows = S.array(S.WorkflowSchema),
}, { "product_id", "name", "description", "product_type", "status", "tag", "created_at",
  "product_blocks", "fixed_inputs", "workflows" }))
def("DescriptionPatch", S.object({ description = str }, { "description" }))

-- ---- processes ----
def("ProcessSubscription", S.object({ subscription_id = uuid, description = str, start_date = nts, end_date = nts },
  { "subscription_id" }))
def("ProcessStep", S.object({
  name = str, status = str, state = {}, created_by = nstr, step_id = uuid, stepid = uuid,
  executed = nts, started = nts, completed = nts, commit_hash = nstr, state_delta = {},
}, { "name", "status" }))
local process_properties = {
  process_id = uuid, workflow_id = uuid, workflow_name = str, workflow_target = nstr, is_task = bool,
  created_by = nstr, failed_reason = nstr, started_at = ts, last_status = str, last_step = nstr,
  assignee = str, last_modified_at = ts, traceback = nstr, note = nstr, product_id = S.nullable(uuid),
  customer_id = nstr, product = {}, subscriptions = S.array(S.ProcessSubscription),
  current_state = S.nullable(any_object), steps = S.nullable(S.array(S.ProcessStep)), form = {},
}
local process_required = { "process_id", "workflow_id", "workflow_name", "is_task", "started_at",
  "last_status", "assignee", "last_modified_at", "subscriptions" }
def("ProcessSchema", S.object(process_properties, process_required))
def("ProcessDetail", S.object(process_properties, process_required))
def("ProcessStatusCounts", S.object({
  process_counts = { type = "object", additionalProperties = int },
  task_counts = { type = "object", additionalProperties = int },
}, { "process_counts", "task_counts" }))
def("ProcessIdSchema", S.object({ id = uuid }, { "id" }))
def("FormPages", { type = "array", items = any_object,
  description = "The user input of the form pages shown so far, one object per page." })
def("ProcessPatch", S.object({ note = nstr }, {}))

-- ---- settings ----
def("EngineSettingsSchema", S.object({ global_lock = bool, running_processes = int, global_status = str },
  { "global_lock", "running_processes", "global_status" }))
def("GlobalLockBody", S.object({ global_lock = bool }, { "global_lock" }))
def("WorkerStatus", S.object({ executor_type = str, number_of_workers_online = int,
  number_of_queued_jobs = int, number_of_running_jobs = int },
  { "executor_type", "number_of_workers_online", "number_of_queued_jobs", "number_of_running_jobs" }))
def("ReloadReport", S.object({ ok = bool, generation = {}, errors = S.array(any_object) }, { "ok" }))
def("GenerationSchema", S.object({ generation = S.nullable(int), code_hash = str, loaded_at = ts,
  files = S.array(S.object({ path = str, sha256 = str }, { "path", "sha256" })) }, { "generation" }))

-- ---- subscriptions ----
def("CustomerDescription", S.object({ id = uuid, subscription_id = uuid, customer_id = str, description = str,
  created_at = ts }, { "id", "subscription_id", "customer_id", "description" }))
def("CustomerDescriptionCreate", S.object({ customer_id = str, subscription_id = uuid, description = str },
  { "customer_id", "subscription_id", "description" }))
def("CustomerDescriptionUpdate", S.object({ id = uuid, customer_id = str, subscription_id = uuid,
  description = str }, { "id", "description" }))
def("SubscriptionWorkflows", S.object({
  create = S.array(any_object), modify = S.array(any_object), terminate = S.array(any_object),
  system = S.array(any_object), validate = S.array(any_object), reason = str,
}, { "create", "modify", "terminate", "system" }))
def("DomainModel", S.object({ subscription_id = uuid, product = any_object, customer_id = str,
  start_date = nts, end_date = nts, status = str, customer_descriptions = S.array(S.CustomerDescription) },
  { "subscription_id", "status" }, { description = "The subscription with its product blocks as instances." }))

-- ---- GraphQL and misc ----
def("GraphQLRequest", S.object({ query = str, variables = S.nullable(any_object), operationName = nstr },
  { "query" }))
def("GraphQLResponse", S.object({ data = {}, errors = S.array(any_object) }, {}))
def("Translations", any_object)

return S

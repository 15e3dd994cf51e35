-- orch.forms: forms in the pydantic-forms protocol that the orchestrator UI
-- speaks. A form is a function (state, ctx) run as a coroutine that yields
-- pages (forms.page{...}) and returns the state additions; post_form replays it
-- with the submitted pages. How to write one: docs/forms.md.

local fields = require("orch.forms.fields")
local schema = require("orch.forms.schema")
local check = require("orch.forms.check")
local protocol = require("orch.forms.protocol")
local builtin = require("orch.forms.builtin")

local forms = {}

-- field kinds
for _, kind in ipairs({
  "string",
  "long_text",
  "integer",
  "number",
  "boolean",
  "uuid",
  "timestamp",
  "choice",
  "multi_choice",
  "list",
  "subscription",
  "product",
  "read_only",
  "label",
  "divider",
  "summary",
  "callout",
  "display_subscription",
}) do
  forms[kind] = fields[kind]
end

forms.null = fields.null -- what an optional field left empty holds (orch.json.null)
forms.page = fields.page
forms.is_page = fields.is_page
forms.invalid = fields.invalid
forms.title_from_name = fields.title_from_name

-- Functions products add to every form's ctx: forms.context{name = fn, ...} while the
-- scripts load. The host's own ctx entries (docs/forms.md, "Context") cannot be replaced.
local extensions = {}
local HOST_CTX = { user = true, workflow = true, workflow_name = true, workflow_target = true, products = true,
  subscriptions = true, subscription = true, check_product = true, check_subscription = true }

function forms.context(functions)
  if type(functions) ~= "table" then
    error("orch.forms.context expects a table {name = function, ...}", 2)
  end
  for name, fn in pairs(functions) do
    if type(name) ~= "string" or type(fn) ~= "function" then
      error("orch.forms.context: '" .. tostring(name) .. "' must name a function", 2)
    elseif HOST_CTX[name] then
      error("orch.forms.context: '" .. name .. "' is the host's own ctx." .. name .. " and cannot be replaced", 2)
    elseif extensions[name] and extensions[name] ~= fn then
      error("orch.forms.context: ctx." .. name .. " is already defined", 2)
    end
  end
  for name, fn in pairs(functions) do
    extensions[name] = fn
  end
end

-- The caller's ctx with the products' functions filled in (the caller's own win).
local function extended(ctx)
  ctx = ctx or {}
  for name, fn in pairs(extensions) do
    if ctx[name] == nil then
      ctx[name] = fn
    end
  end
  return ctx
end

-- the protocol
function forms.post_form(form, state, user_inputs, ctx)
  return protocol.post_form(form, state, user_inputs, extended(ctx))
end
function forms.generate_form(form, state, user_inputs, ctx)
  return protocol.generate_form(form, state, user_inputs, extended(ctx))
end
forms.run = protocol.run

-- The JSON Schema of a page as the first request would get it.
function forms.page_schema(page, state, ctx)
  return schema.page_schema(fields.resolve(page, state or {}, extended(ctx)))
end

-- Response bodies, for handlers that need one outside post_form.
forms.not_complete_body = protocol.not_complete_body
forms.validation_body = protocol.validation_body
forms.validation_error = check.error

-- core's automatic first pages
forms.create_form = builtin.create_form
forms.modify_form = builtin.modify_form
forms.initial_form = builtin.initial_form
forms.EMPTY_PAGE = builtin.EMPTY_PAGE
forms.REASONS = builtin.REASONS
forms.stale_message = builtin.stale_message

return forms

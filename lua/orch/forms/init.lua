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

-- the protocol
forms.post_form = protocol.post_form
forms.generate_form = protocol.generate_form
forms.run = protocol.run

-- The JSON Schema of a page as the first request would get it.
function forms.page_schema(page, state, ctx)
  return schema.page_schema(fields.resolve(page, state or {}, ctx or {}))
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

-- Tasks of the example orchestrator: fill NetBox with the reference data the
-- products need, empty it again, and a showcase of the engine's step kinds and
-- form fields (independent of NetBox).

local wf = orch.workflow
local kinds = orch.workflows
local F = orch.forms
local nb = require("lib.netbox")

local SITES = { "Amsterdam", "Paris", "London", "Madrid", "Rome" }
local ROLES = { { "Provider", "9e9e9e" }, { "Provider Edge", "ff9800" } }
local MANUFACTURERS = { "Cisco", "Nokia", "Cumulus", "FRR" }
local DEVICE_TYPES = { { "Cisco", "8812", 21 }, { "Cisco", "ASR 903", 3 }, { "Nokia", "7950 XRS-20", 44 },
  { "Nokia", "7210 SAS-R6", 3 }, { "Nokia", "7220 IXR-D2", 1 }, { "Nokia", "7220 IXR-D3", 1 },
  { "Cumulus", "cVX VM", 1 }, { "FRR", "FRR VM", 1 } }
local PREFIXES = { { "10.0.127.0/24", "IPv4 loopback" }, { "fc00:0:0:127::/64", "IPv6 loopback" },
  { "10.0.10.0/24", "IPv4 core link" }, { "fc00:0:0:10::/64", "IPv6 core link" } }

-- Create what is missing; re-running creates nothing.
local function ensure(endpoint, filters, body, created)
  if not nb.find(endpoint, filters) then
    nb.create(endpoint, body)
    created[#created + 1] = endpoint .. " " .. (body.name or body.model or body.prefix)
  end
end

kinds.task({
  name = "task_bootstrap_netbox",
  description = "Netbox Bootstrap",
  steps = {
    wf.step("Create initial set of objects", function()
      local created = {}
      for _, site in ipairs(SITES) do
        ensure("dcim/sites", { slug = nb.slug(site) }, { name = site, slug = nb.slug(site), status = "active" },
          created)
      end
      for _, r in ipairs(ROLES) do
        ensure("dcim/device-roles", { slug = nb.slug(r[1]) }, { name = r[1], slug = nb.slug(r[1]), color = r[2] },
          created)
      end
      for _, m in ipairs(MANUFACTURERS) do
        ensure("dcim/manufacturers", { slug = nb.slug(m) }, { name = m, slug = nb.slug(m) }, created)
      end
      for _, t in ipairs(DEVICE_TYPES) do
        ensure("dcim/device-types", { manufacturer = nb.slug(t[1]), model = t[2] }, {
          manufacturer = { name = t[1], slug = nb.slug(t[1]) }, model = t[2], slug = nb.slug(t[2]), u_height = t[3],
        }, created)
      end
      return { objects_created = orch.json.array(created) }
    end),
    wf.step("Create prefixes", function()
      local created = {}
      for _, p in ipairs(PREFIXES) do
        ensure("ipam/prefixes", { prefix = p[1] }, { prefix = p[1], description = p[2], is_pool = false }, created)
      end
      return { prefixes_created = orch.json.array(created) }
    end),
  },
})

-- Dependants before what they depend on (NetBox protects the others).
local WIPE_ORDER = { "vpn/l2vpn-terminations", "vpn/l2vpns", "dcim/cables", "ipam/ip-addresses", "ipam/vlans",
  "ipam/vlan-groups", "dcim/devices", "dcim/device-types", "dcim/manufacturers", "dcim/device-roles", "dcim/sites",
  "ipam/prefixes" }

kinds.task({
  name = "task_wipe_netbox",
  description = "Netbox Wipe",
  form = F.page({ title = "Wipe Netbox", name = "WipeNetboxForm", has_next = false,
    F.boolean({ "annihilate", title = "Delete everything", default = false, validate = function(v)
      if v ~= true then
        return nil, "Will not continue unless you check this box"
      end
    end }),
  }),
  steps = {
    wf.step("Wipe all objects", function()
      local deleted = {}
      for _, endpoint in ipairs(WIPE_ORDER) do
        local n = 0
        for _, o in ipairs(nb.list(endpoint)) do
          if nb.delete(endpoint, o.id) then
            n = n + 1
          end
        end
        deleted[endpoint] = n
      end
      return { objects_deleted = deleted }
    end),
  },
})

-- ---- the showcase ----

local function showcase_form()
  local first = coroutine.yield(F.page({
    title = "Component showcase",
    name = "ShowcaseForm",
    validate = function(values)
      if values.wait_for_callback and values.fail_on_purpose then
        return nil, "Choose either wait_for_callback or fail_on_purpose, not both"
      end
    end,
    F.callout({ "intro", header = "Showcase", message = "Every kind of form field and step of the engine.",
      message_type = "primary" }),
    F.label({ "text_fields", title = "Text fields" }),
    F.string({ "text_value", title = "Text", validate = function(v)
      if v:lower() == "reserved" then
        return nil, "'reserved' is a reserved word"
      end
    end }),
    F.string({ "optional_text", title = "Optional text", optional = true }),
    F.long_text({ "long_text", title = "Long text", default = "" }),
    F.read_only({ "read_only_value", title = "Read-only value", value = "fixed" }),
    F.divider({ "divider_1", title = "Divider" }),
    F.integer({ "integer_value", title = "Integer", default = 0 }),
    F.integer({ "constrained_integer", title = "Integer from 1 to 10", min = 1, max = 10, default = 5 }),
    F.boolean({ "boolean_value", title = "Boolean", default = false }),
    F.choice({ "single_choice", title = "Single choice", options = { "alpha", "beta", "gamma" }, default = "alpha" }),
    F.multi_choice({ "multi_choice", title = "Multiple choice",
      options = { "one", "two", "three" }, min_items = 1, max_items = 3,
      unique = true }),
    F.divider({ "divider_2", title = "Divider" }),
    F.boolean({ "run_conditional_step", title = "Run the conditional step", default = true }),
    F.boolean({ "show_suspended_step", title = "Suspend at an input step", default = false }),
    F.boolean({ "wait_for_callback", title = "Wait for a callback", default = false }),
    F.boolean({ "fail_on_purpose", title = "Fail on purpose", default = false }),
  }))
  local lines = {}
  for _, k in ipairs({ "text_value", "integer_value", "constrained_integer", "boolean_value", "single_choice" }) do
    lines[#lines + 1] = k .. ": " .. tostring(first[k])
  end
  local second = coroutine.yield(F.page({ title = "Summary", name = "ShowcaseSummaryForm", has_next = false,
    F.long_text({ "summary", title = "Summary", default = table.concat(lines, "\n") }),
    F.boolean({ "continue_task", title = "Continue the task", default = true }),
  }))
  first.continue_task = second.continue_task
  return first
end

local function flag(name)
  return function(state)
    return state[name] == true
  end
end

kinds.task({
  name = "task_showcase",
  description = "Component Showcase",
  form = showcase_form,
  steps = {
    wf.step("Record initial input", function(state)
      return { e2e_initial_input = { text_value = state.text_value, constrained_integer = state.constrained_integer,
        single_choice = state.single_choice, multi_choice = state.multi_choice } }
    end),
    wf.conditional(flag("run_conditional_step"))(wf.step("Conditional step", function()
      return { e2e_conditional_step_ran = true }
    end)),
    wf.conditional(flag("show_suspended_step"))(wf.inputstep("Suspended confirmation", {
      assignee = "SYSTEM",
      form = F.page({ title = "Suspended Confirmation", name = "ConfirmationForm", has_next = false,
        F.string({ "confirmation_text", title = "Confirmation text", default = "" }),
        F.long_text({ "confirmation_details", title = "Confirmation details", optional = true }),
        F.boolean({ "confirmed", title = "Confirmed", default = true }),
      }),
    })),
    wf.conditional(flag("wait_for_callback"))(wf.callback_step({
      name = "Callback step",
      action = wf.step("Hand out the callback route", function(state)
        return { e2e_callback_route = state.callback_route }
      end),
      validate = wf.step("Record the callback result", function(state)
        return { e2e_callback_result = state.callback_result }
      end),
    })),
    wf.step("Deliberate failure", function(state)
      if state.fail_on_purpose then
        error(require("orch.runner").failure("Failing on purpose, as asked"), 0)
      end
      return { e2e_failure_step_checked = true }
    end),
  },
})

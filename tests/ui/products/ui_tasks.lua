-- Workflows the browser tests (tests/ui) drive through the UI's form pages. The
-- suite loads them next to the example products (it copies both into one folder).
local model = orch.model
local wf = orch.workflow
local kinds = orch.workflows
local F = orch.forms

-- Two form pages: "Next" on the first, "Start task" on the second.
local function two_page_form()
  local first = coroutine.yield(F.page({
    title = "UI test: who",
    F.string({ "ui_owner" }),
  }))
  local second = coroutine.yield(F.page({
    title = "UI test: how many",
    has_next = false,
    F.integer({ "ui_count", default = 2 }),
  }))
  return { ui_owner = first.ui_owner, ui_count = second.ui_count }
end

kinds.task({
  name = "ui_test_form_task",
  description = "UI test: a task with a two-page start form",
  form = two_page_form,
  steps = {
    wf.step("Record the answers", function(state)
      return { recorded = state.ui_owner .. ":" .. tostring(state.ui_count) }
    end),
  },
})

kinds.task({
  name = "ui_test_input_task",
  description = "UI test: suspends until someone approves it",
  steps = {
    wf.step("Before approval", function() return { before = true } end),
    wf.inputstep("Wait for approval", {
      form = F.page({ title = "Approve", F.string({ "approved_by" }) }),
      assignee = "SYSTEM",
    }),
    wf.step("After approval", function(state) return { approved = state.approved_by ~= nil } end),
  },
})

-- Creates a Node subscription of the example products without external systems
-- (two form pages after the product page, made-up inventory ids): the suite seeds
-- the subscription pages with it over REST. The UI form test drives create_node.
local function node_form()
  local first = coroutine.yield(F.page({
    title = "Node name",
    F.string({ "node_name" }),
  }))
  local second = coroutine.yield(F.page({
    title = "Node details",
    has_next = false,
    F.string({ "node_description", default = "created by the UI test" }),
  }))
  return { node_name = first.node_name, node_description = second.node_description }
end

kinds.create_workflow({
  name = "ui_test_create_node",
  description = "UI test: create a node without NetBox",
  products = { "node Cisco", "node Nokia", "node Cumulus", "node FRR" },
  form = node_form,
  steps = {
    wf.step("Construct node", function(state)
      local sub = model.create({ product = state.product, customer_id = "ui-test" })
      local node = sub.node
      node.node_name = state.node_name
      node.node_description = state.node_description
      node.node_status = "active"
      node.role_id, node.type_id, node.site_id = 1, 1, 1
      node.ims_id, node.nrm_id, node.ipv4_ipam_id, node.ipv6_ipam_id = 1, 1, 1, 1
      sub:describe()
      return { subscription = sub, subscription_id = sub.subscription_id }
    end),
  },
})

-- orchestrator-core's automatic first pages: create workflows start with a
-- product choice, modify/terminate/validate/reconcile workflows with the
-- subscription (and an optional version). The database-backed parts come from
-- context callbacks that the engine supplies (docs/forms.md, "Context").

local json = require("orch.json")
local fields = require("orch.forms.fields")
local protocol = require("orch.forms.protocol")

local M = {}

local null = json.null

-- core's texts for the `reason` of an unusable workflow (workflows/utils.py)
M.REASONS = {
  ["subscription.not_in_sync"] = "Subscription already has a running process or task",
  ["subscription.relations_not_in_sync"] = "This subscription can not be modified because some related subscriptions "
    .. "are not insync",
  ["subscription.no_modify_invalid_status"] = "This subscription can not be modified because of the status it has",
  ["subscription.no_modify_parent_subscription"] = "This subscription can not be modified as it is used in other "
    .. "subscriptions",
  ["subscription.no_modify_subscription_in_use_by_others"] = "This subscription can not be modified as it is used "
    .. "in other subscriptions",
  ["subscription.no_modify_auto_negotiation"] = "This workflow is not valid for this subscription",
}

function M.stale_message(given, current)
  return ("Stale data: given version (%s) does not match the current version (%s)"):format(
    given == nil and "None" or tostring(given),
    tostring(current)
  )
end

local function workflow_of(state, ctx)
  return state.workflow_name or ctx.workflow_name, state.workflow_target or ctx.workflow_target
end

local function call(fn, name, ...)
  if type(fn) ~= "function" then
    error("the form context has no " .. name .. " function", 0)
  end
  return fn(...)
end

-- Run the author's form after the first page with the first page's keys in
-- the state, and put those keys under its result.
local function continue_with(user_form, state, ctx, begin)
  if user_form == nil then
    return begin
  end
  for k, v in pairs(begin) do
    state[k] = v
  end
  local out = {}
  for k, v in pairs(begin) do
    out[k] = v
  end
  for k, v in pairs(protocol.run(user_form, state, ctx)) do
    out[k] = v
  end
  return out
end

-- The form of a create workflow: a page with only `product` (the products
-- linked to the workflow, from ctx.products{workflow = name}), adding
-- {product, product_name}, then `user_form` (optional).
function M.create_form(user_form)
  return function(state, ctx)
    local workflow = workflow_of(state, ctx)
    local products = call(ctx.products, "products", { workflow = workflow }, state) or {}
    local by_id = {}
    for _, p in ipairs(products) do
      by_id[tostring(p.product_id)] = p
    end
    local page = fields.page({
      name = "NewProductPage",
      meta = null,
      fields.product({
        "product",
        options = function()
          local o = {}
          for i, p in ipairs(products) do
            o[i] = { value = tostring(p.product_id), label = p.name }
          end
          return o
        end,
        validate = function(id)
          if ctx.check_product then
            local why = ctx.check_product(by_id[id], workflow)
            if why then
              return nil, why == true and "This workflow is not valid for this product" or why
            end
          end
        end,
      }),
    })
    local answer = coroutine.yield(page)
    local product = by_id[answer.product]
    return continue_with(user_form, state, ctx, { product = answer.product, product_name = product.name })
  end
end

local function usable_message(why)
  if type(why) == "table" then
    local reason = why.reason
    return "This workflow cannot be started: " .. (M.REASONS[reason] or tostring(reason))
  end
  return tostring(why)
end

-- The form of a modify, terminate, validate or reconcile workflow: a page
-- {subscription_id, version?} checked with ctx.subscription(id) and
-- ctx.check_subscription(sub, workflow_name, target), adding {subscription_id,
-- product, customer_id, version}, then `user_form` (optional).
-- opts.picker = true renders subscription_id as a picker (ctx.subscriptions).
function M.modify_form(user_form, opts)
  opts = opts or {}
  return function(state, ctx)
    local workflow, target = workflow_of(state, ctx)
    local subs = {}
    local function load(id)
      if subs[id] == nil then
        subs[id] = call(ctx.subscription, "subscription", id) or false
      end
      return subs[id]
    end
    local function usable(id)
      local sub = load(id)
      if not sub then
        return nil, "Subscription not found"
      end
      local why = ctx.check_subscription and ctx.check_subscription(sub, workflow, target)
      if why then
        return nil, usable_message(why)
      end
    end
    local id_field
    if opts.picker then
      id_field = fields.subscription({
        "subscription_id",
        query = { workflow = workflow, target = target },
        strict = false,
        validate = usable,
      })
    else
      id_field = fields.uuid({ "subscription_id", validate = usable })
    end
    local page = fields.page({
      name = "ModifySubscriptionPage",
      meta = null,
      id_field,
      fields.integer({ "version", optional = true }),
      validate = function(values)
        local current = load(values.subscription_id).version
        local given = values.version
        if given ~= null and given ~= current then
          return nil, M.stale_message(given, current)
        end
      end,
    })
    local answer = coroutine.yield(page)
    local sub = load(answer.subscription_id)
    local begin = {
      subscription_id = tostring(sub.subscription_id),
      product = tostring(sub.product_id),
      customer_id = sub.customer_id == nil and null or sub.customer_id,
      version = sub.version,
    }
    return continue_with(user_form, state, ctx, begin)
  end
end

-- core's default form of a workflow without one: a single empty page.
M.EMPTY_PAGE = fields.page({ meta = null })

-- The initial form of a workflow of `target` as orchestrator-core builds it.
-- VALIDATE and RECONCILE take no form of their own (as in core).
function M.initial_form(target, user_form)
  target = tostring(target):upper()
  if target == "CREATE" then
    return M.create_form(user_form)
  elseif target == "MODIFY" or target == "TERMINATE" then
    return M.modify_form(user_form)
  elseif target == "VALIDATE" or target == "RECONCILE" then
    if user_form ~= nil then
      error(target .. " workflows take no form of their own", 2)
    end
    return M.modify_form(nil)
  end
  return user_form or M.EMPTY_PAGE
end

return M

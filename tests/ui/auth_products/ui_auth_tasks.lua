-- Tasks of the browser test with authentication on (tests/ui/ui_auth.test.mjs): the
-- products folder of that host holds only this file.
local wf = orch.workflow
local kinds = orch.workflows
local F = orch.forms

-- Workflow RBAC (docs/security.md): a function(user) -> boolean.
local function member(group)
  return function(user)
    for _, g in ipairs(user and user.groups or {}) do
      if g == group then
        return true
      end
    end
    return false
  end
end

-- Anyone who may write (ORCH_AUTH_WRITE_GROUP) starts it; one form page.
kinds.task({
  name = "ui_auth_open_task",
  description = "UI auth: a task every writer starts",
  form = F.page({ title = "UI auth: note", has_next = false, F.string({ "ui_note" }) }),
  steps = {
    wf.step("Record the note", function(state)
      return { recorded = state.ui_note }
    end),
  },
})

-- Only the members of "starters" start it: the UI lists it disabled for the others
-- (GraphQL Workflow.isAllowed), and the host answers their start with 403.
kinds.task({
  name = "ui_auth_starters_only",
  description = "UI auth: only starters start it",
  authorize_callback = member("starters"),
  steps = {
    wf.step("Work", function()
      return { worked = true }
    end),
  },
})

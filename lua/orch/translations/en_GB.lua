-- Core labels for the UI (GET /api/translations/en-GB): form field labels and
-- workflow names. Products add their own in <products>/translations/en_GB.lua,
-- which is merged over this table.
return {
  forms = {
    fields = {
      note = "Note",
      note_info = "Free text about this subscription: reminders, remarks, feedback.",
      subscription_id = "Subscription",
      subscription_id_info = "The subscription this workflow acts on",
      version = "Version",
      product = "Product",
      product_type = "Product type",
      product_summary = "Check the values in the table below",
      customer_id = "Customer",
      summary = {
        after = "After",
        before = "Before",
        customer_id = "Customer ID",
        description = "Description",
        subscription_id = "Subscription ID",
        title = "Title",
      },
    },
  },
  workflow = {
    modify_note = "Modify the note of a subscription",
    task_clean_up_tasks = "Remove old completed tasks",
    task_resume_workflows = "Resume workflows that wait for a retry",
    task_validate_products = "Check products, workflows and their links",
    task_validate_subscriptions = "Validate all subscriptions",
    task_validate_awaiting_callbacks = "Fail callbacks that waited past their timeout",
  },
}

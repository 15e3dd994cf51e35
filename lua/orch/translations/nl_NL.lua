-- Core labels in Dutch (GET /api/translations/nl-NL); see en_GB.lua.
return {
  forms = {
    fields = {
      note = "Notitie",
      note_info = "Vrije tekst bij deze subscription: herinneringen, opmerkingen.",
      subscription_id = "Subscription",
      subscription_id_info = "De subscription waarop deze workflow werkt",
      version = "Versie",
      product = "Product",
      product_type = "Producttype",
      product_summary = "Controleer de waarden in de tabel hieronder",
      customer_id = "Klant",
      summary = {
        after = "Na",
        before = "Voor",
        customer_id = "Klant-ID",
        description = "Omschrijving",
        subscription_id = "Subscription-ID",
        title = "Titel",
      },
    },
  },
  workflow = {
    modify_note = "Notitie van een subscription wijzigen",
    task_clean_up_tasks = "Oude afgeronde taken verwijderen",
    task_resume_workflows = "Workflows hervatten die op een nieuwe poging wachten",
    task_validate_products = "Producten, workflows en hun koppelingen controleren",
    task_validate_subscriptions = "Alle subscriptions valideren",
    task_validate_awaiting_callbacks = "Callbacks die te lang wachten laten falen",
  },
}

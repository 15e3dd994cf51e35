-- 0005_graphql_indexes.sql
-- Indexes for the GraphQL lists (lua/orch/gql/): the sorts the UI uses by default and
-- the filters it sends, so that a page of 100k subscriptions is an index scan.

-- Subscriptions: default sort startDate, usually with a status filter (the list page).
CREATE INDEX IF NOT EXISTS orch_subscriptions_start_date ON subscriptions (start_date, subscription_id);
CREATE INDEX IF NOT EXISTS orch_subscriptions_status_start_date ON subscriptions (status, start_date, subscription_id);
CREATE INDEX IF NOT EXISTS orch_subscriptions_end_date ON subscriptions (end_date);
CREATE INDEX IF NOT EXISTS orch_subscriptions_description ON subscriptions (description);
CREATE INDEX IF NOT EXISTS orch_subscriptions_insync ON subscriptions (insync) WHERE NOT insync;

-- Processes: the workflows/tasks pages sort by lastModifiedAt within isTask.
CREATE INDEX IF NOT EXISTS orch_processes_last_modified_at ON processes (last_modified_at);
CREATE INDEX IF NOT EXISTS orch_processes_is_task_last_modified ON processes (is_task, last_modified_at);
CREATE INDEX IF NOT EXISTS orch_processes_workflow_id ON processes (workflow_id);

-- Substring search on descriptions (`query` words match anywhere): a trigram index when
-- pg_trgm can be installed by the database owner (it is a trusted extension since
-- PostgreSQL 13); without it the search still works, by a scan.
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
    BEGIN
      CREATE EXTENSION IF NOT EXISTS pg_trgm;
    EXCEPTION WHEN insufficient_privilege OR feature_not_supported THEN
      RAISE NOTICE 'pg_trgm not installed (%); description search without a trigram index', SQLERRM;
    END;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
    -- every column a free-text word is tried on, so that the OR of them is a bitmap OR
    EXECUTE 'CREATE INDEX IF NOT EXISTS orch_subscriptions_description_trgm ON subscriptions '
         || 'USING gin (description gin_trgm_ops)';
    EXECUTE 'CREATE INDEX IF NOT EXISTS orch_subscriptions_customer_id_trgm ON subscriptions '
         || 'USING gin (customer_id gin_trgm_ops)';
    EXECUTE 'CREATE INDEX IF NOT EXISTS orch_subscriptions_note_trgm ON subscriptions '
         || 'USING gin ((coalesce(note, '''')) gin_trgm_ops)';
  END IF;
END
$$;

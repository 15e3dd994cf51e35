-- 0001_core_schema.sql
-- Core tables of the orchestrator, laid out to match the database that
-- orchestrator-core 5.3 ends up with once all of its schema migrations have run:
-- same table/column names, types, nullability, defaults, keys, cascades,
-- constraint and index names. Column order follows the upstream physical order.
-- Not included here: scheduler tables, AI-search tables/extensions, the
-- subscriptions_search materialized view, alembic bookkeeping and workflow seeds.
-- The migration runner wraps this file in a single transaction.

CREATE EXTENSION IF NOT EXISTS "uuid-ossp";

-------------------------------------------------------------------------------
-- Product catalogue
-------------------------------------------------------------------------------

CREATE TABLE products (
    product_id   uuid                     NOT NULL DEFAULT uuid_generate_v4(),
    name         varchar                  NOT NULL,
    description  varchar(2000)            NOT NULL,
    product_type varchar(255)             NOT NULL,
    tag          varchar(20)              NOT NULL,
    status       varchar(255)             NOT NULL,
    created_at   timestamp with time zone NOT NULL DEFAULT CURRENT_TIMESTAMP,
    end_date     timestamp with time zone,
    CONSTRAINT products_pkey PRIMARY KEY (product_id),
    CONSTRAINT products_name_key UNIQUE (name)
);
CREATE INDEX ix_products_tag ON products (tag);

CREATE TABLE fixed_inputs (
    fixed_input_id uuid                     NOT NULL DEFAULT uuid_generate_v4(),
    name           varchar                  NOT NULL,
    value          varchar                  NOT NULL,
    created_at     timestamp with time zone NOT NULL DEFAULT CURRENT_TIMESTAMP,
    product_id     uuid                     NOT NULL,
    CONSTRAINT fixed_inputs_pkey PRIMARY KEY (fixed_input_id),
    CONSTRAINT fixed_inputs_name_product_id_key UNIQUE (name, product_id),
    CONSTRAINT fixed_inputs_product_id_fkey FOREIGN KEY (product_id)
        REFERENCES products (product_id) ON DELETE CASCADE
);

CREATE TABLE product_blocks (
    product_block_id uuid                     NOT NULL DEFAULT uuid_generate_v4(),
    name             varchar                  NOT NULL,
    description      varchar(2000)            NOT NULL,
    tag              varchar(20),
    status           varchar(255),
    created_at       timestamp with time zone NOT NULL DEFAULT CURRENT_TIMESTAMP,
    end_date         timestamp with time zone,
    CONSTRAINT product_blocks_pkey PRIMARY KEY (product_block_id),
    CONSTRAINT product_blocks_name_key UNIQUE (name)
);

-- Block hierarchy: in_use_by_id (parent) depends on depends_on_id (child).
CREATE TABLE product_block_relations (
    in_use_by_id  uuid    NOT NULL,
    depends_on_id uuid    NOT NULL,
    min           integer,
    max           integer,
    CONSTRAINT product_block_relations_pkey PRIMARY KEY (in_use_by_id, depends_on_id),
    CONSTRAINT product_block_relations_in_use_by_id_fkey FOREIGN KEY (in_use_by_id)
        REFERENCES product_blocks (product_block_id) ON DELETE CASCADE,
    CONSTRAINT product_block_relations_depends_on_id_fkey FOREIGN KEY (depends_on_id)
        REFERENCES product_blocks (product_block_id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX product_block_relation_i_d_ix
    ON product_block_relations (in_use_by_id, depends_on_id);

CREATE TABLE resource_types (
    resource_type_id uuid          NOT NULL DEFAULT uuid_generate_v4(),
    resource_type    varchar(510)  NOT NULL,
    description      varchar(2000),
    CONSTRAINT resource_types_pkey PRIMARY KEY (resource_type_id),
    CONSTRAINT resource_types_resource_type_key UNIQUE (resource_type)
);

CREATE TABLE product_product_blocks (
    product_id       uuid NOT NULL,
    product_block_id uuid NOT NULL,
    CONSTRAINT product_product_blocks_pkey PRIMARY KEY (product_id, product_block_id),
    CONSTRAINT product_product_blocks_product_id_fkey FOREIGN KEY (product_id)
        REFERENCES products (product_id) ON DELETE CASCADE,
    CONSTRAINT product_product_blocks_product_block_id_fkey FOREIGN KEY (product_block_id)
        REFERENCES product_blocks (product_block_id) ON DELETE CASCADE
);

CREATE TABLE product_block_resource_types (
    product_block_id uuid NOT NULL,
    resource_type_id uuid NOT NULL,
    CONSTRAINT product_block_resource_types_pkey PRIMARY KEY (product_block_id, resource_type_id),
    CONSTRAINT product_block_resource_types_product_block_id_fkey FOREIGN KEY (product_block_id)
        REFERENCES product_blocks (product_block_id) ON DELETE CASCADE,
    CONSTRAINT product_block_resource_types_resource_type_id_fkey FOREIGN KEY (resource_type_id)
        REFERENCES resource_types (resource_type_id) ON DELETE CASCADE
);

-------------------------------------------------------------------------------
-- Workflows
-------------------------------------------------------------------------------

-- Soft-deleted through deleted_at; rows are registered by the Lua workflow registry.
CREATE TABLE workflows (
    workflow_id uuid                     NOT NULL DEFAULT uuid_generate_v4(),
    name        varchar                  NOT NULL,
    target      varchar                  NOT NULL,
    description varchar(2000)            NOT NULL,
    created_at  timestamp with time zone NOT NULL DEFAULT CURRENT_TIMESTAMP,
    deleted_at  timestamp with time zone,
    is_task     boolean                  NOT NULL DEFAULT false,
    CONSTRAINT workflows_pkey PRIMARY KEY (workflow_id),
    CONSTRAINT workflows_name_key UNIQUE (name)
);

CREATE TABLE products_workflows (
    product_id  uuid NOT NULL,
    workflow_id uuid NOT NULL,
    CONSTRAINT products_workflows_pkey PRIMARY KEY (product_id, workflow_id),
    CONSTRAINT products_workflows_product_id_fkey FOREIGN KEY (product_id)
        REFERENCES products (product_id) ON DELETE CASCADE,
    CONSTRAINT products_workflows_workflow_id_fkey FOREIGN KEY (workflow_id)
        REFERENCES workflows (workflow_id) ON DELETE CASCADE
);

-------------------------------------------------------------------------------
-- Subscriptions
-------------------------------------------------------------------------------

-- Optimistic-locking counter: every UPDATE of a row bumps its version by one.
CREATE FUNCTION increment_version() RETURNS trigger
    LANGUAGE plpgsql
AS $fn$
BEGIN
    NEW.version := OLD.version + 1;
    RETURN NEW;
END;
$fn$;

CREATE TABLE subscriptions (
    subscription_id uuid                     NOT NULL DEFAULT uuid_generate_v4(),
    description     varchar(2000)            NOT NULL,
    status          varchar(255)             NOT NULL,
    product_id      uuid                     NOT NULL,
    customer_id     varchar                  NOT NULL,
    insync          boolean                  NOT NULL,
    start_date      timestamp with time zone,
    end_date        timestamp with time zone,
    note            varchar(5000),
    version         integer                  NOT NULL DEFAULT 1,
    CONSTRAINT subscriptions_pkey PRIMARY KEY (subscription_id),
    CONSTRAINT subscriptions_product_id_fkey FOREIGN KEY (product_id)
        REFERENCES products (product_id)
);
CREATE INDEX ix_subscriptions_customer_id ON subscriptions (customer_id);
CREATE INDEX ix_subscriptions_product_id ON subscriptions (product_id);
CREATE INDEX ix_subscriptions_status ON subscriptions (status);
CREATE INDEX subscription_customer_ix ON subscriptions (subscription_id, customer_id);
CREATE INDEX subscription_product_ix ON subscriptions (subscription_id, product_id);

CREATE TRIGGER subscriptions_increment_version_trigger
    BEFORE UPDATE ON subscriptions
    FOR EACH ROW EXECUTE FUNCTION increment_version();

-- One row per product-block instance; subscription_id is the owning subscription.
CREATE TABLE subscription_instances (
    subscription_instance_id uuid         NOT NULL DEFAULT uuid_generate_v4(),
    subscription_id          uuid         NOT NULL,
    product_block_id         uuid         NOT NULL,
    label                    varchar(255),
    CONSTRAINT subscription_instances_pkey PRIMARY KEY (subscription_instance_id),
    CONSTRAINT subscription_instances_subscription_id_fkey FOREIGN KEY (subscription_id)
        REFERENCES subscriptions (subscription_id) ON DELETE CASCADE,
    CONSTRAINT subscription_instances_product_block_id_fkey FOREIGN KEY (product_block_id)
        REFERENCES product_blocks (product_block_id)
);
CREATE INDEX ix_subscription_instances_product_block_id
    ON subscription_instances (product_block_id);
CREATE INDEX ix_subscription_instances_subscription_id
    ON subscription_instances (subscription_id);
CREATE INDEX subscription_instance_s_pb_ix
    ON subscription_instances (subscription_instance_id, subscription_id, product_block_id);

-- Edges between instances (possibly across subscriptions); order_id = list position.
CREATE TABLE subscription_instance_relations (
    in_use_by_id      uuid         NOT NULL,
    depends_on_id     uuid         NOT NULL,
    order_id          integer      NOT NULL,
    domain_model_attr varchar(255),
    CONSTRAINT subscription_instance_relations_pkey
        PRIMARY KEY (in_use_by_id, depends_on_id, order_id),
    CONSTRAINT subscription_instance_relations_in_use_by_id_fkey FOREIGN KEY (in_use_by_id)
        REFERENCES subscription_instances (subscription_instance_id) ON DELETE CASCADE,
    CONSTRAINT subscription_instance_relations_depends_on_id_fkey FOREIGN KEY (depends_on_id)
        REFERENCES subscription_instances (subscription_instance_id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX subscription_relation_i_d_o_ix
    ON subscription_instance_relations (in_use_by_id, depends_on_id, order_id);

-- Resource-type values of an instance, always stored as text.
CREATE TABLE subscription_instance_values (
    subscription_instance_value_id uuid           NOT NULL DEFAULT uuid_generate_v4(),
    subscription_instance_id       uuid           NOT NULL,
    resource_type_id               uuid           NOT NULL,
    value                          varchar(10000) NOT NULL,
    CONSTRAINT subscription_instance_values_pkey PRIMARY KEY (subscription_instance_value_id),
    CONSTRAINT subscription_instance_values_subscription_instance_id_fkey
        FOREIGN KEY (subscription_instance_id)
        REFERENCES subscription_instances (subscription_instance_id) ON DELETE CASCADE,
    CONSTRAINT subscription_instance_values_resource_type_id_fkey FOREIGN KEY (resource_type_id)
        REFERENCES resource_types (resource_type_id)
);
CREATE INDEX ix_subscription_instance_values_resource_type_id
    ON subscription_instance_values (resource_type_id);
CREATE INDEX ix_subscription_instance_values_subscription_instance_id
    ON subscription_instance_values (subscription_instance_id);
CREATE INDEX siv_si_rt_ix
    ON subscription_instance_values (subscription_instance_value_id, subscription_instance_id, resource_type_id);

CREATE TABLE subscription_customer_descriptions (
    id              uuid                     NOT NULL DEFAULT uuid_generate_v4(),
    subscription_id uuid                     NOT NULL,
    customer_id     varchar                  NOT NULL,
    description     varchar(2000)            NOT NULL,
    created_at      timestamp with time zone NOT NULL DEFAULT CURRENT_TIMESTAMP,
    version         integer                  NOT NULL DEFAULT 1,
    CONSTRAINT subscription_customer_descriptions_pkey PRIMARY KEY (id),
    CONSTRAINT uniq_customer_subscription_description UNIQUE (customer_id, subscription_id),
    CONSTRAINT subscription_customer_descriptions_subscription_id_fkey FOREIGN KEY (subscription_id)
        REFERENCES subscriptions (subscription_id) ON DELETE CASCADE
);
CREATE INDEX ix_subscription_customer_descriptions_customer_id
    ON subscription_customer_descriptions (customer_id);
CREATE INDEX ix_subscription_customer_descriptions_subscription_id
    ON subscription_customer_descriptions (subscription_id);

CREATE TRIGGER subscription_customer_descriptions_increment_version_trigger
    BEFORE UPDATE ON subscription_customer_descriptions
    FOR EACH ROW EXECUTE FUNCTION increment_version();

-- Free-form JSON per subscription. The upstream ORM declares subscription_id as
-- the primary key (the upstream migration only created a plain index); we keep both.
CREATE TABLE subscription_metadata (
    subscription_id uuid  NOT NULL,
    metadata        jsonb NOT NULL,
    CONSTRAINT subscription_metadata_pkey PRIMARY KEY (subscription_id),
    CONSTRAINT subscription_metadata_subscription_id_fkey FOREIGN KEY (subscription_id)
        REFERENCES subscriptions (subscription_id) ON DELETE CASCADE
);
CREATE INDEX ix_subscription_metadata_subscription_id
    ON subscription_metadata (subscription_id);

-------------------------------------------------------------------------------
-- Processes (workflow runs)
-------------------------------------------------------------------------------

CREATE TABLE processes (
    pid              uuid                     NOT NULL DEFAULT uuid_generate_v4(),
    assignee         varchar(50)              NOT NULL DEFAULT 'SYSTEM',
    last_status      varchar(50)              NOT NULL,
    last_step        varchar(255),
    started_at       timestamp with time zone NOT NULL DEFAULT CURRENT_TIMESTAMP,
    last_modified_at timestamp with time zone NOT NULL DEFAULT CURRENT_TIMESTAMP,
    failed_reason    varchar(10000),
    traceback        varchar(50000),
    created_by       varchar(255),
    is_task          boolean                  NOT NULL DEFAULT false,
    workflow_id      uuid                     NOT NULL,
    note             varchar(5000),
    CONSTRAINT processes_pkey PRIMARY KEY (pid),
    CONSTRAINT processes_workflow_id_fkey FOREIGN KEY (workflow_id)
        REFERENCES workflows (workflow_id)
);
CREATE INDEX ix_processes_is_task ON processes (is_task);
CREATE INDEX ix_processes_pid ON processes (pid);

-- The process log: one row per executed step, state = full state after the step.
CREATE TABLE process_steps (
    stepid       uuid                     NOT NULL DEFAULT uuid_generate_v4(),
    pid          uuid                     NOT NULL,
    name         varchar                  NOT NULL,
    status       varchar(50)              NOT NULL,
    state        jsonb                    NOT NULL,
    created_by   varchar(255),
    completed_at timestamp with time zone NOT NULL DEFAULT statement_timestamp(),
    commit_hash  varchar(40),
    started_at   timestamp with time zone NOT NULL DEFAULT statement_timestamp(),
    CONSTRAINT process_steps_pkey PRIMARY KEY (stepid),
    CONSTRAINT process_steps_pid_fkey FOREIGN KEY (pid)
        REFERENCES processes (pid) ON DELETE CASCADE
);
CREATE INDEX ix_process_steps_pid ON process_steps (pid);

-- Links a run to the subscriptions it touched. The subscription side has no
-- cascade on purpose. workflow_target is deprecated upstream but still present.
CREATE TABLE processes_subscriptions (
    id              uuid                     NOT NULL DEFAULT uuid_generate_v4(),
    pid             uuid                     NOT NULL,
    subscription_id uuid                     NOT NULL,
    created_at      timestamp with time zone NOT NULL DEFAULT CURRENT_TIMESTAMP,
    workflow_target varchar(255)                      DEFAULT 'CREATE',
    CONSTRAINT processes_subscriptions_pkey PRIMARY KEY (id),
    CONSTRAINT processes_subscriptions_pid_fkey FOREIGN KEY (pid)
        REFERENCES processes (pid) ON DELETE CASCADE,
    CONSTRAINT processes_subscriptions_subscription_id_fkey FOREIGN KEY (subscription_id)
        REFERENCES subscriptions (subscription_id)
);
CREATE INDEX ix_processes_subscriptions_pid ON processes_subscriptions (pid);
CREATE INDEX ix_processes_subscriptions_subscription_id ON processes_subscriptions (subscription_id);
CREATE INDEX processes_subscriptions_ix ON processes_subscriptions (pid, subscription_id);

CREATE TYPE inputtype AS ENUM ('user_input', 'initial_state');

-- Validated form input of a process: the initial form and every resume form.
CREATE TABLE input_states (
    input_state_id uuid                     NOT NULL DEFAULT uuid_generate_v4(),
    pid            uuid                     NOT NULL,
    input_state    jsonb                    NOT NULL,
    input_time     timestamp with time zone NOT NULL DEFAULT CURRENT_TIMESTAMP,
    input_type     inputtype                NOT NULL,
    CONSTRAINT input_states_pkey PRIMARY KEY (input_state_id),
    CONSTRAINT input_states_pid_fkey FOREIGN KEY (pid)
        REFERENCES processes (pid) ON DELETE CASCADE
);
CREATE INDEX ix_input_states_input_state_id ON input_states (input_state_id);

-------------------------------------------------------------------------------
-- Engine settings (single row)
-------------------------------------------------------------------------------

CREATE TABLE engine_settings (
    global_lock boolean NOT NULL,
    CONSTRAINT engine_settings_pkey PRIMARY KEY (global_lock)
);

INSERT INTO engine_settings (global_lock) VALUES (false);

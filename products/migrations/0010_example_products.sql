-- Tables of the example products (products/): the customers their create forms
-- offer (the example orchestrator's own `customers` table, with fixed ids so that
-- walk-throughs and tests can name them) and the example's runtime settings, e.g.
-- whether workflows call LSO (`lso_enabled`, read when a process reaches the step).
CREATE TABLE IF NOT EXISTS customers (
    customer_id varchar(255) NOT NULL DEFAULT uuid_generate_v4()::text,
    fullname    varchar(255) NOT NULL,
    shortcode   varchar(255) NOT NULL,
    CONSTRAINT customers_pkey PRIMARY KEY (customer_id)
);
CREATE INDEX IF NOT EXISTS ix_customers_shortcode ON customers (shortcode);
INSERT INTO customers (customer_id, fullname, shortcode) VALUES
    ('d6a2d3c0-5b0f-4b1e-9c3a-000000000001', 'SURF', 'SURF'),
    ('d6a2d3c0-5b0f-4b1e-9c3a-000000000002', 'ESnet', 'ESnet'),
    ('d6a2d3c0-5b0f-4b1e-9c3a-000000000003', 'GÉANT', 'GEANT')
ON CONFLICT (customer_id) DO NOTHING;

CREATE TABLE IF NOT EXISTS example_settings (
    key   text NOT NULL PRIMARY KEY,
    value text NOT NULL
);
INSERT INTO example_settings (key, value) VALUES ('lso_enabled', 'false') ON CONFLICT (key) DO NOTHING;

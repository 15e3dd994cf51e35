-- 0014_field_types.sql
-- The type each block field had when the catalogue last followed the definitions
-- (lua/orch/model/catalog.lua). A field whose type changes is compared with its
-- stored values: `catalog plan` shows it with `!` and the number of values that do
-- not convert, and reloads and `serve` refuse it until `catalog apply
-- --allow-destructive` records the new type (docs/products.md, "The catalogue").
CREATE TABLE orch_field_types (
    block      text NOT NULL,                    -- product_blocks.name
    field      text NOT NULL,                    -- resource_types.resource_type
    field_type text NOT NULL,                    -- "string", "integer", "enum(\"a\", \"b\")", a scalar_type's name
    CONSTRAINT orch_field_types_pkey PRIMARY KEY (block, field)
);

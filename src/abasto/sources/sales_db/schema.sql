-- gaseosas SA's sales database (the seed's Amazon RDS), schema "sales".
-- Idempotent: every statement can run again on an existing schema.
-- Ids are text, as in the generated world (S0001, R01, COLA-600-NR) and in imported datasets (FRN-S0015).

CREATE SCHEMA IF NOT EXISTS sales;

CREATE TABLE IF NOT EXISTS sales.regions (
    region_id    text PRIMARY KEY,
    name         text NOT NULL,
    base_temp_c  double precision,
    lat          double precision,
    lon          double precision
);

-- pre-sell reps; phone is PII
CREATE TABLE IF NOT EXISTS sales.reps (
    rep_id     text PRIMARY KEY,
    name       text NOT NULL,
    phone      text,
    region_id  text NOT NULL REFERENCES sales.regions (region_id)
);
CREATE INDEX IF NOT EXISTS reps_region_idx ON sales.reps (region_id);

-- a route is visited by one rep on fixed weekdays (0 = Monday); orders are delivered delivery_lag_days later
CREATE TABLE IF NOT EXISTS sales.routes (
    route_id           text PRIMARY KEY,
    region_id          text NOT NULL REFERENCES sales.regions (region_id),
    rep_id             text REFERENCES sales.reps (rep_id),
    visit_weekdays     smallint[] NOT NULL DEFAULT '{}',
    delivery_lag_days  smallint NOT NULL DEFAULT 1,
    name               text,
    tier               text,
    CONSTRAINT routes_weekdays_valid CHECK (visit_weekdays <@ ARRAY[0, 1, 2, 3, 4, 5, 6]::smallint[])
);
CREATE INDEX IF NOT EXISTS routes_region_idx ON sales.routes (region_id);
CREATE INDEX IF NOT EXISTS routes_rep_idx ON sales.routes (rep_id);

-- points of sale (the world's "stores"); owner_name and phone are PII
CREATE TABLE IF NOT EXISTS sales.customers (
    store_id      text PRIMARY KEY,
    name          text NOT NULL,
    owner_name    text,
    phone         text,
    channel       text NOT NULL,
    region_id     text NOT NULL REFERENCES sales.regions (region_id),
    route_id      text REFERENCES sales.routes (route_id),
    lat           double precision,
    lon           double precision,
    coolers       integer,
    big_customer  boolean NOT NULL DEFAULT false,
    opens_hour    smallint,
    closes_hour   smallint,
    visit_hour    smallint,
    delivery_hour smallint,
    CONSTRAINT customers_channel_valid
        CHECK (channel IN ('tienda', 'minisuper', 'supermarket', 'on_premise')),
    CONSTRAINT customers_hours_valid
        CHECK (opens_hour BETWEEN 0 AND 24 AND closes_hour BETWEEN 0 AND 24)
);
CREATE INDEX IF NOT EXISTS customers_region_idx ON sales.customers (region_id);
CREATE INDEX IF NOT EXISTS customers_route_idx ON sales.customers (route_id);

-- SKUs (the world's "skus"); imported retail datasets fill the category columns instead of pack data
CREATE TABLE IF NOT EXISTS sales.products (
    sku                  text PRIMARY KEY,
    brand                text,
    pack                 text,
    size_ml              integer,
    returnable           boolean,
    units_per_case       integer,
    price                numeric(10, 2),
    category             text,
    management_group_id  integer,
    first_category_id    integer,
    second_category_id   integer,
    third_category_id    integer
);

-- which SKUs each point of sale carries, with its usual daily rate and shelf/cooler capacity
CREATE TABLE IF NOT EXISTS sales.assortment (
    store_id          text NOT NULL REFERENCES sales.customers (store_id),
    sku               text NOT NULL REFERENCES sales.products (sku),
    base_daily_units  double precision,
    capacity_units    integer,
    PRIMARY KEY (store_id, sku)
);
CREATE INDEX IF NOT EXISTS assortment_sku_idx ON sales.assortment (sku);

CREATE TABLE IF NOT EXISTS sales.orders (
    order_id       text PRIMARY KEY,
    store_id       text NOT NULL REFERENCES sales.customers (store_id),
    route_id       text REFERENCES sales.routes (route_id),
    rep_id         text REFERENCES sales.reps (rep_id),
    order_date     date NOT NULL,
    delivery_date  date,
    status         text NOT NULL,
    ordered_at     timestamptz
);
CREATE INDEX IF NOT EXISTS orders_store_date_idx ON sales.orders (store_id, order_date);
CREATE INDEX IF NOT EXISTS orders_delivery_date_idx ON sales.orders (delivery_date);

CREATE TABLE IF NOT EXISTS sales.order_lines (
    order_id       text NOT NULL REFERENCES sales.orders (order_id),
    line_no        integer NOT NULL,
    sku            text NOT NULL REFERENCES sales.products (sku),
    qty_ordered    integer NOT NULL,
    qty_delivered  integer,
    unit_price     numeric(10, 2),
    shortfall_reason text,
    PRIMARY KEY (order_id, line_no)
);
CREATE INDEX IF NOT EXISTS order_lines_sku_idx ON sales.order_lines (sku);

CREATE TABLE IF NOT EXISTS sales.deliveries (
    delivery_id   text PRIMARY KEY,
    order_id      text NOT NULL REFERENCES sales.orders (order_id),
    store_id      text NOT NULL REFERENCES sales.customers (store_id),
    delivered_at  timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_order_idx ON sales.deliveries (order_id);
CREATE INDEX IF NOT EXISTS deliveries_store_time_idx ON sales.deliveries (store_id, delivered_at);

-- sell-out per point of sale, SKU and hour, consolidated from POS devices and retailers' EDI.
-- on_hand_end / out_of_stock are null where the source reports no stock reading.
CREATE TABLE IF NOT EXISTS sales.sellout_hourly (
    store_id      text NOT NULL REFERENCES sales.customers (store_id),
    sku           text NOT NULL REFERENCES sales.products (sku),
    hour_start    timestamptz NOT NULL,
    units_sold    double precision NOT NULL,
    on_hand_end   integer,
    out_of_stock  boolean,
    PRIMARY KEY (store_id, sku, hour_start)
);
CREATE INDEX IF NOT EXISTS sellout_hourly_sku_hour_idx ON sales.sellout_hourly (sku, hour_start);
CREATE INDEX IF NOT EXISTS sellout_hourly_hour_brin ON sales.sellout_hourly USING brin (hour_start);

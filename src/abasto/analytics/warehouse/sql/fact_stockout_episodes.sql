-- fact_stockout_episodes: maximal runs of consecutive out-of-stock hours per store x SKU.
-- end_at is exclusive (last out-of-stock hour + 1 h); is_open: the run reaches the last observed
-- hour of that store x SKU. lost_units_estimate = hours x the average units sold per in-stock hour.
WITH marked AS (
    SELECT
        k.store_id,
        k.sku,
        k.hour_key,
        k.out_of_stock,
        CASE
            WHEN LAG(k.hour_key) OVER (PARTITION BY k.store_id, k.sku, k.out_of_stock ORDER BY k.hour_key)
                = k.hour_key - INTERVAL 1 HOUR
            THEN 0
            ELSE 1
        END AS starts_run
    FROM marts.fact_stock_hourly AS k
),
runs AS (
    SELECT
        m.store_id,
        m.sku,
        m.hour_key,
        SUM(m.starts_run) OVER (
            PARTITION BY m.store_id, m.sku
            ORDER BY m.hour_key
            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS run_no
    FROM marked AS m
    WHERE m.out_of_stock
),
episodes AS (
    SELECT
        u.store_id,
        u.sku,
        MIN(u.hour_key) AS start_at,
        MAX(u.hour_key) AS last_hour,
        COUNT(*) AS hours
    FROM runs AS u
    GROUP BY u.store_id, u.sku, u.run_no
),
rates AS (
    SELECT
        k.store_id,
        k.sku,
        MAX(k.hour_key) AS last_observed,
        AVG(CASE WHEN NOT k.out_of_stock THEN f.units_sold END) AS units_per_instock_hour
    FROM marts.fact_stock_hourly AS k
    JOIN marts.fact_sales_hourly AS f
        ON f.store_id = k.store_id AND f.sku = k.sku AND f.hour_key = k.hour_key
    GROUP BY k.store_id, k.sku
)
SELECT
    e.store_id,
    e.sku,
    e.start_at,
    e.last_hour + INTERVAL 1 HOUR AS end_at,
    CAST(e.start_at AT TIME ZONE 'America/Mexico_City' AS DATE) AS date_key,
    e.hours,
    e.hours * COALESCE(r.units_per_instock_hour, 0.0) AS lost_units_estimate,
    e.last_hour = r.last_observed AS is_open
FROM episodes AS e
JOIN rates AS r ON r.store_id = e.store_id AND r.sku = e.sku

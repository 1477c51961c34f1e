-- fact_sales_hourly: units sold per store x SKU x hour. hour_key is the UTC hour start;
-- date_key is the bottler's local (America/Mexico_City) date of that hour.
SELECT
    s.hour_start AS hour_key,
    CAST(s.hour_start AT TIME ZONE 'America/Mexico_City' AS DATE) AS date_key,
    s.store_id,
    s.sku,
    s.units_sold
FROM curated.sellout_hourly AS s

-- fact_stock_hourly: on-hand units at the end of each hour and whether the SKU was out of stock.
SELECT
    s.hour_start AS hour_key,
    CAST(s.hour_start AT TIME ZONE 'America/Mexico_City' AS DATE) AS date_key,
    s.store_id,
    s.sku,
    s.on_hand_end,
    s.out_of_stock
FROM curated.sellout_hourly AS s

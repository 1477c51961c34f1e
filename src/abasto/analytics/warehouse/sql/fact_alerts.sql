-- fact_alerts: stockout alerts raised by the stream processor (one row per alert id).
SELECT
    a.alert_id,
    a.kind,
    a.store_id,
    a.sku,
    a.raised_at,
    DATE_TRUNC('hour', a.raised_at) AS hour_key,
    a.risk,
    a.suggested_qty,
    a.projected_stockout_at,
    a.model_version,
    a.state
FROM realtime.alerts AS a

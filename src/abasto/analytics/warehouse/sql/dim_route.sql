-- dim_route (SCD1): one row per pre-sell route.
SELECT
    r.route_id,
    r.region_id,
    g.name AS region_name,
    r.rep_id,
    r.delivery_lag_days
FROM curated.routes AS r
LEFT JOIN curated.regions AS g ON g.region_id = r.region_id

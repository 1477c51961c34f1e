-- dim_store (SCD1): one row per point of sale; route and rep hang off the store. No PII columns.
SELECT
    c.store_id,
    c.name AS store_name,
    c.channel,
    c.region_id,
    g.name AS region_name,
    c.route_id,
    r.rep_id,
    c.lat,
    c.lon,
    c.coolers,
    c.big_customer,
    c.opens_hour,
    c.closes_hour
FROM curated.customers AS c
LEFT JOIN curated.regions AS g ON g.region_id = c.region_id
LEFT JOIN curated.routes AS r ON r.route_id = c.route_id

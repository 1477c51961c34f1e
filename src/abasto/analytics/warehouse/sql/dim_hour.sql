-- dim_hour: every hour a fact refers to (UTC hour_key) with its local calendar attributes.
-- iso_weekday (1 = Monday) counts days from Monday 2000-01-03: EXTRACT(ISODOW/DOW) differs by engine.
WITH hours AS (
    SELECT f.hour_key FROM marts.fact_sales_hourly AS f
    UNION
    SELECT a.hour_key FROM marts.fact_alerts AS a
),
local_hours AS (
    SELECT
        h.hour_key,
        CAST(h.hour_key AT TIME ZONE 'America/Mexico_City' AS DATE) AS date_key,
        EXTRACT(HOUR FROM h.hour_key AT TIME ZONE 'America/Mexico_City') AS local_hour
    FROM hours AS h
),
weekdays AS (
    SELECT
        l.hour_key,
        l.date_key,
        l.local_hour,
        DATE_DIFF('day', DATE '2000-01-03', l.date_key) % 7 + 1 AS iso_weekday
    FROM local_hours AS l
)
SELECT
    w.hour_key,
    w.date_key,
    w.local_hour,
    w.iso_weekday,
    (w.iso_weekday - 1) * 24 + w.local_hour AS hour_of_week
FROM weekdays AS w

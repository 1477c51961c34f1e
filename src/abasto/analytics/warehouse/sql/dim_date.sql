-- dim_date: every local date of dim_hour with its calendar attributes.
-- iso_weekday (1 = Monday) counts days from Monday 2000-01-03: EXTRACT(ISODOW/DOW) differs by engine.
WITH dates AS (
    SELECT DISTINCT h.date_key FROM marts.dim_hour AS h
),
weekdays AS (
    SELECT
        d.date_key,
        DATE_DIFF('day', DATE '2000-01-03', d.date_key) % 7 + 1 AS iso_weekday
    FROM dates AS d
)
SELECT
    w.date_key,
    EXTRACT(YEAR FROM w.date_key) AS year,
    EXTRACT(MONTH FROM w.date_key) AS month,
    EXTRACT(DAY FROM w.date_key) AS day_of_month,
    w.iso_weekday,
    w.iso_weekday >= 6 AS is_weekend
FROM weekdays AS w

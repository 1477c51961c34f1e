-- dim_rep (SCD1): one row per sales rep; the phone (PII) stays in the curated zone.
SELECT
    p.rep_id,
    p.name AS rep_name,
    p.region_id
FROM curated.reps AS p

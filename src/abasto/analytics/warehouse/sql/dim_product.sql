-- dim_product (SCD1): one row per SKU.
SELECT
    p.sku,
    p.brand,
    p.pack,
    p.size_ml,
    p.returnable,
    p.units_per_case,
    p.price,
    p.category
FROM curated.products AS p

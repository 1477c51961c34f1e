"""The marts' SQL: written once in DuckDB SQL, transpiled strictly to Athena, Spark and Redshift."""

from __future__ import annotations

import duckdb
import pytest
import sqlglot
from sqlglot import exp

from abasto.analytics.warehouse import MARTS, Dialect, Mart, get_mart, transpile, transpile_all
from abasto.errors import InvalidInputError, NotFoundError


@pytest.mark.parametrize("mart", MARTS, ids=lambda m: m.name)
def test_duckdb_original_is_one_select_both_parsers_accept(mart: Mart) -> None:
    statements = duckdb.extract_statements(mart.sql())
    assert len(statements) == 1 and statements[0].type == duckdb.StatementType.SELECT
    tree = sqlglot.parse_one(mart.sql(), read="duckdb")
    assert isinstance(tree, exp.Select)
    schemas = {t.db for t in tree.find_all(exp.Table) if t.db}
    assert schemas <= {"curated", "marts", "realtime"}


@pytest.mark.parametrize("dialect", list(Dialect))
@pytest.mark.parametrize("mart", MARTS, ids=lambda m: m.name)
def test_transpiles_strictly_and_parses_back(mart: Mart, dialect: Dialect) -> None:
    text = transpile(mart, dialect)
    back = sqlglot.parse_one(text, read=dialect.sqlglot_name)
    assert isinstance(back, exp.Select)
    # the same tables are read in every dialect
    tables = {(t.db, t.name) for t in back.find_all(exp.Table) if t.db}
    original = {
        (t.db, t.name) for t in sqlglot.parse_one(mart.sql(), read="duckdb").find_all(exp.Table) if t.db
    }
    assert tables == original


def test_dialect_specific_renderings() -> None:
    spark = transpile_all("spark")
    athena = transpile_all("athena")
    assert "FROM_UTC_TIMESTAMP(" in spark["fact_sales_hourly"]
    assert "AT_TIMEZONE(" in athena["fact_sales_hourly"]
    assert "AT TIME ZONE" in transpile_all("redshift")["fact_sales_hourly"]
    assert list(spark) == [m.name for m in MARTS]


def test_unknown_dialect_and_mart_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="unknown dialect"):
        transpile(MARTS[0], "oracle")
    with pytest.raises(NotFoundError):
        get_mart("fact_nothing")
    assert get_mart("marts.dim_store").name == "dim_store"

"""DuckDB SQL of each Mangetamain analysis.

Every query reads the ``recipes`` and/or ``interactions`` tables registered on a
DuckDB connection (see :func:`mangetamain.data.connect`) and each analysis is a
function returning a :class:`pandas.DataFrame`.

Convention: as in the Food.com dataset, a rating of ``0`` means the user left a
review without stars. Such interactions are counted in ``n_ratings`` and in the
star distribution, but excluded from every ``avg_rating`` (which is therefore an
average of 1-5 stars). ``n_rated`` counts the interactions with 1-5 stars.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import pandas as pd

#: Count of interactions per star, 0 to 5 (stars with no rating give 0).
RATING_DISTRIBUTION_SQL = """
SELECT s.star::INTEGER AS rating, count(i.rating) AS n_ratings
FROM range(0, 6) AS s(star)
LEFT JOIN interactions AS i ON i.rating = s.star
GROUP BY s.star
ORDER BY s.star
"""

#: Interactions and average 1-5 rating per calendar month.
RATING_BY_MONTH_SQL = """
SELECT
    CAST(date_trunc('month', date) AS DATE) AS month,
    count(*) AS n_ratings,
    count(*) FILTER (WHERE rating > 0) AS n_rated,
    avg(rating) FILTER (WHERE rating > 0) AS avg_rating
FROM interactions
GROUP BY 1
ORDER BY 1
"""

#: Per month of year (1-12): recipes submitted, interactions and average rating
#: of the interactions made during that month.
SEASONALITY_SQL = """
WITH months AS (
    SELECT m::INTEGER AS month FROM range(1, 13) AS t(m)
),
rec AS (
    SELECT month(submitted) AS month, count(*) AS n_recipes
    FROM recipes GROUP BY 1
),
rat AS (
    SELECT
        month(date) AS month,
        count(*) AS n_ratings,
        avg(rating) FILTER (WHERE rating > 0) AS avg_rating
    FROM interactions GROUP BY 1
)
SELECT
    months.month,
    strftime(make_date(2000, months.month, 1), '%b') AS month_name,
    coalesce(rec.n_recipes, 0) AS n_recipes,
    coalesce(rat.n_ratings, 0) AS n_ratings,
    rat.avg_rating
FROM months
LEFT JOIN rec USING (month)
LEFT JOIN rat USING (month)
ORDER BY months.month
"""

#: Per ISO weekday (1 = Monday ... 7 = Sunday): interactions, average rating.
RATING_BY_WEEKDAY_SQL = """
WITH days AS (
    SELECT d::INTEGER AS weekday FROM range(1, 8) AS t(d)
),
rat AS (
    SELECT
        isodow(date) AS weekday,
        count(*) AS n_ratings,
        avg(rating) FILTER (WHERE rating > 0) AS avg_rating
    FROM interactions GROUP BY 1
)
SELECT
    days.weekday,
    dayname(DATE '2024-01-01' + (days.weekday - 1)) AS day_name,
    days.weekday >= 6 AS is_weekend,
    coalesce(rat.n_ratings, 0) AS n_ratings,
    rat.avg_rating
FROM days
LEFT JOIN rat USING (weekday)
ORDER BY days.weekday
"""

#: Weekend (Saturday, Sunday) vs weekday: interactions, distinct active days,
#: interactions per active day and average rating.
WEEKEND_VS_WEEKDAY_SQL = """
WITH kinds AS (
    SELECT * FROM (VALUES ('weekday', 1), ('weekend', 2)) AS t(day_type, ord)
),
rat AS (
    SELECT
        CASE WHEN isodow(date) >= 6 THEN 'weekend' ELSE 'weekday' END AS day_type,
        count(*) AS n_ratings,
        count(DISTINCT date) AS n_days,
        avg(rating) FILTER (WHERE rating > 0) AS avg_rating
    FROM interactions GROUP BY 1
)
SELECT
    kinds.day_type,
    coalesce(rat.n_ratings, 0) AS n_ratings,
    coalesce(rat.n_days, 0) AS n_days,
    rat.n_ratings / nullif(rat.n_days, 0) AS ratings_per_day,
    rat.avg_rating
FROM kinds
LEFT JOIN rat USING (day_type)
ORDER BY kinds.ord
"""

#: Headline numbers: recipes, interactions, users, average 1-5 rating.
SUMMARY_SQL = """
SELECT
    (SELECT count(*) FROM recipes) AS n_recipes,
    (SELECT count(*) FROM interactions) AS n_ratings,
    (SELECT count(DISTINCT user_id) FROM interactions) AS n_users,
    (SELECT avg(rating) FILTER (WHERE rating > 0) FROM interactions) AS avg_rating
"""

#: Every SQL query of the app: name -> SQL text (used by the app and infra checks).
ALL_QUERIES: dict[str, str] = {
    "summary": SUMMARY_SQL,
    "rating_distribution": RATING_DISTRIBUTION_SQL,
    "rating_by_month": RATING_BY_MONTH_SQL,
    "seasonality": SEASONALITY_SQL,
    "rating_by_weekday": RATING_BY_WEEKDAY_SQL,
    "weekend_vs_weekday": WEEKEND_VS_WEEKDAY_SQL,
}


def run_query(con: duckdb.DuckDBPyConnection, name: str) -> pd.DataFrame:
    """Run one query of :data:`ALL_QUERIES` by name.

    Args:
        con: Connection with ``recipes`` and ``interactions`` registered.
        name: Key of :data:`ALL_QUERIES`.

    Returns:
        The query result.

    Raises:
        KeyError: If ``name`` is not a known query.
    """
    return con.execute(ALL_QUERIES[name]).df()


def summary(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Compute the headline numbers.

    Args:
        con: Connection with ``recipes`` and ``interactions`` registered.

    Returns:
        One row: ``n_recipes``, ``n_ratings``, ``n_users``, ``avg_rating``.
    """
    return run_query(con, "summary")


def rating_distribution(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Count interactions per star.

    Args:
        con: Connection with ``interactions`` registered.

    Returns:
        Six rows ``rating`` 0-5 with ``n_ratings``.
    """
    return run_query(con, "rating_distribution")


def rating_by_month(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Average rating over time, per calendar month.

    Args:
        con: Connection with ``interactions`` registered.

    Returns:
        One row per month with data: ``month`` (first day), ``n_ratings``,
        ``n_rated`` and ``avg_rating`` (1-5 stars only, NaN if none).
    """
    return run_query(con, "rating_by_month")


def seasonality(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Recipes submitted and ratings per month of year.

    Args:
        con: Connection with ``recipes`` and ``interactions`` registered.

    Returns:
        Twelve rows: ``month`` 1-12, ``month_name``, ``n_recipes``,
        ``n_ratings`` and ``avg_rating``.
    """
    return run_query(con, "seasonality")


def rating_by_weekday(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Ratings per ISO weekday.

    Args:
        con: Connection with ``interactions`` registered.

    Returns:
        Seven rows: ``weekday`` 1 (Monday) - 7 (Sunday), ``day_name``,
        ``is_weekend``, ``n_ratings`` and ``avg_rating``.
    """
    return run_query(con, "rating_by_weekday")


def weekend_vs_weekday(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Compare weekend and weekday rating activity.

    Args:
        con: Connection with ``interactions`` registered.

    Returns:
        Two rows (``weekday``, ``weekend``): ``n_ratings``, ``n_days`` (distinct
        dates with activity), ``ratings_per_day`` and ``avg_rating``.
    """
    return run_query(con, "weekend_vs_weekday")


#: Analysis functions by query name, for callers preferring callables.
ANALYSES: dict[str, Callable[[duckdb.DuckDBPyConnection], pd.DataFrame]] = {
    "summary": summary,
    "rating_distribution": rating_distribution,
    "rating_by_month": rating_by_month,
    "seasonality": seasonality,
    "rating_by_weekday": rating_by_weekday,
    "weekend_vs_weekday": weekend_vs_weekday,
}

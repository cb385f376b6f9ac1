"""Deterministic generator of the SYNTHETIC sample dataset shipped with the app.

The tables mimic the schema of the public Food.com dataset (``RAW_recipes`` and
``RAW_interactions``) but every value is made up from a fixed random seed, with
a mild seasonality (more recipes in winter) and weekend effect (more, slightly
better ratings on Saturday and Sunday) so the analyses have something to show.

Usage::

    python -m mangetamain.sample --out data/sample
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mangetamain.data import EXPECTED_FILES, EXPECTED_SCHEMAS

#: Seed of the generator; changing it changes the committed sample.
DEFAULT_SEED = 20241126
#: Number of recipes in the default sample.
DEFAULT_N_RECIPES = 1500
#: Number of interactions in the default sample.
DEFAULT_N_INTERACTIONS = 6000
#: Number of distinct users in the default sample.
DEFAULT_N_USERS = 800

_START = dt.date(2008, 1, 1)
_END = dt.date(2018, 12, 31)
_ADJECTIVES = (
    "easy", "creamy", "spicy", "grandma's", "quick", "rustic", "lemon", "smoky",
    "garlic", "honey", "vegan", "crispy", "baked", "slow cooker", "summer", "hearty",
)  # fmt: skip
_DISHES = (
    "chicken curry", "banana bread", "tomato soup", "apple pie", "beef stew",
    "pasta salad", "chocolate cake", "lentil dal", "fish tacos", "pancakes",
    "ratatouille", "quiche", "chili", "risotto", "brownies", "coleslaw",
)  # fmt: skip
#: Relative weight of each month (Jan..Dec) for recipe submissions.
_MONTH_WEIGHTS = (1.3, 1.0, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8, 0.9, 1.1, 1.3, 1.5)
#: Relative weight of each ISO weekday (Mon..Sun) for interactions.
_WEEKDAY_WEIGHTS = (0.9, 0.85, 0.85, 0.85, 0.9, 1.3, 1.4)
_STARS = (0, 1, 2, 3, 4, 5)
_STAR_WEIGHTS = (5.0, 1.2, 1.5, 4.0, 17.0, 71.3)


def _random_date(
    rng: random.Random, start: dt.date, end: dt.date, weights: Sequence[float]
) -> dt.date:
    """Draw a date in ``[start, end]`` (inclusive) by rejection sampling.

    Args:
        rng: Random generator.
        start: First allowed date.
        end: Last allowed date.
        weights: Acceptance weight per month (12 values) or per ISO weekday
            (7 values); the highest weight is always accepted.

    Returns:
        The drawn date.
    """
    span = (end - start).days
    top = max(weights)
    while True:
        day = start + dt.timedelta(days=rng.randint(0, span))
        key = day.month - 1 if len(weights) == 12 else day.isoweekday() - 1
        if rng.random() * top < weights[key]:
            return day


def generate(
    seed: int = DEFAULT_SEED,
    n_recipes: int = DEFAULT_N_RECIPES,
    n_interactions: int = DEFAULT_N_INTERACTIONS,
    n_users: int = DEFAULT_N_USERS,
) -> dict[str, pa.Table]:
    """Generate the synthetic tables.

    Args:
        seed: Random seed; the same arguments always give the same tables.
        n_recipes: Number of recipes.
        n_interactions: Number of interactions (ratings/reviews).
        n_users: Number of distinct user ids to draw from.

    Returns:
        ``{"recipes": ..., "interactions": ...}`` in
        :data:`mangetamain.data.EXPECTED_SCHEMAS`.
    """
    rng = random.Random(seed)
    ids = [10_000 + i * 7 for i in range(n_recipes)]
    submitted: list[dt.date] = []
    recipes: dict[str, list[object]] = {
        "id": list(ids),
        "name": [],
        "minutes": [],
        "submitted": [],
        "n_ingredients": [],
    }
    for _ in ids:
        submitted.append(_random_date(rng, _START, _END, _MONTH_WEIGHTS))
        recipes["name"].append(f"{rng.choice(_ADJECTIVES)} {rng.choice(_DISHES)}")
        recipes["minutes"].append(int(rng.lognormvariate(3.5, 0.7)))
        recipes["n_ingredients"].append(rng.randint(2, 20))
    recipes["submitted"] = list(submitted)

    interactions: dict[str, list[object]] = {
        f: [] for f in EXPECTED_SCHEMAS["interactions"].names
    }
    for _ in range(n_interactions):
        idx = rng.randrange(n_recipes)
        day = _random_date(rng, submitted[idx], _END, _WEEKDAY_WEIGHTS)
        stars = rng.choices(_STARS, weights=_STAR_WEIGHTS)[0]
        if day.isoweekday() >= 6 and stars in (3, 4) and rng.random() < 0.15:
            stars += 1  # weekend cooks are a little happier
        interactions["user_id"].append(1_000 + rng.randrange(n_users))
        interactions["recipe_id"].append(ids[idx])
        interactions["date"].append(day)
        interactions["rating"].append(stars)

    rec = pa.Table.from_pydict(recipes, schema=EXPECTED_SCHEMAS["recipes"])
    inter = pa.Table.from_pydict(interactions, schema=EXPECTED_SCHEMAS["interactions"])
    inter = inter.sort_by([("date", "ascending"), ("recipe_id", "ascending")])
    return {"recipes": rec, "interactions": inter}


def write(tables: dict[str, pa.Table], out: Path) -> list[Path]:
    """Write the tables as Parquet files named as in :data:`EXPECTED_FILES`.

    Args:
        tables: Tables by name.
        out: Output directory (created if needed).

    Returns:
        Paths of the written files.
    """
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, table in tables.items():
        path = out / EXPECTED_FILES[name]
        pq.write_table(table, path, compression="zstd")
        paths.append(path)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: generate the sample and write it.

    Args:
        argv: Arguments (defaults to ``sys.argv[1:]``).

    Returns:
        Process exit code (0).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data/sample"))
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    for path in write(generate(seed=args.seed), args.out):
        print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

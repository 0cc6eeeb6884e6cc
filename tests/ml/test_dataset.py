from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from surveillance_pipeline.contract import LABEL_SCHEMA, Label
from surveillance_pipeline.ml.dataset import (
    LABEL,
    PATTERNS,
    SPLIT,
    TrainingDataError,
    account_day_labels,
    build_training_set,
    split_by_time,
)

D1, D2, D3 = date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def labels(*episodes: tuple) -> pl.DataFrame:
    """Episodes as (pattern, user_ids, start, end)."""
    return pl.DataFrame(
        [{Label.EPISODE_ID: f"e{i}", Label.PATTERN: pattern, Label.SYMBOL: "BTCUSDT", Label.USER_IDS: users,
          Label.START: start, Label.END: end} for i, (pattern, users, start, end) in enumerate(episodes)],
        schema=LABEL_SCHEMA)


def as_rows(frame: pl.DataFrame) -> list[tuple]:
    return [(r["account_id"], r["date"], r[PATTERNS]) for r in frame.sort("account_id", "date").to_dicts()]


# -- account_day_labels ------------------------------------------------------------------------------------------

def test_an_episode_spanning_midnight_marks_both_days_of_every_account():
    out = account_day_labels(labels(("wash_trading", "u1;u2", at(D1, 23, 30), at(D2, 0, 30))))
    assert as_rows(out) == [("u1", D1, "wash_trading"), ("u1", D2, "wash_trading"),
                            ("u2", D1, "wash_trading"), ("u2", D2, "wash_trading")]
    assert out.schema["date"] == pl.Date


def test_an_episode_within_one_day_marks_only_that_day():
    out = account_day_labels(labels(("spoofing", "u1", at(D2, 10), at(D2, 11))))
    assert as_rows(out) == [("u1", D2, "spoofing")]


def test_market_level_episodes_mark_no_account_day():
    out = account_day_labels(labels(("pump_and_dump", "", at(D1, 10), at(D2, 10)),
                                    ("pump_and_dump", None, at(D1, 10), at(D1, 12)),
                                    ("spoofing", "u3", at(D1, 10), at(D1, 12))))
    assert as_rows(out) == [("u3", D1, "spoofing")]
    only_market = account_day_labels(labels(("pump_and_dump", "", at(D1, 10), at(D2, 10))))
    assert only_market.height == 0


def test_several_patterns_on_one_account_day_are_joined_sorted_and_unique():
    out = account_day_labels(labels(("wash_trading", "u1", at(D1, 10), at(D1, 11)),
                                    ("layering", "u1;u2", at(D1, 12), at(D1, 13)),
                                    ("wash_trading", "u1", at(D1, 14), at(D1, 15)),
                                    ("spoofing", "u1", at(D2, 9), at(D2, 9, 30))))
    assert as_rows(out) == [("u1", D1, "layering;wash_trading"), ("u1", D2, "spoofing"),
                            ("u2", D1, "layering")]


def test_account_ids_are_stripped_of_spaces():
    out = account_day_labels(labels(("layering", " u1 ; u2 ;", at(D1, 10), at(D1, 11))))
    assert as_rows(out) == [("u1", D1, "layering"), ("u2", D1, "layering")]


def test_missing_label_columns_raise_training_data_error():
    frame = labels(("spoofing", "u1", at(D1, 10), at(D1, 11))).drop(Label.END)
    with pytest.raises(TrainingDataError, match="end"):
        account_day_labels(frame)


def test_no_labels_give_an_empty_table_with_the_key_columns():
    out = account_day_labels(labels())
    assert out.height == 0
    assert out.schema == {"account_id": pl.String, "date": pl.Date, PATTERNS: pl.String}


# -- build_training_set ------------------------------------------------------------------------------------------

def features() -> pl.DataFrame:
    rows = [{"account_id": a, "date": d, "f0": float(i)} for i, (a, d) in
            enumerate((a, d) for d in (D1, D2) for a in ("u1", "u2", "u3"))]
    return pl.DataFrame(rows)


def test_labels_are_joined_on_account_and_date():
    table = build_training_set(features(), labels(("spoofing", "u1", at(D1, 10), at(D1, 11)),
                                                  ("wash_trading", "u2;u9", at(D2, 10), at(D2, 11))))
    assert table.height == 6  # one row per feature row: unlabelled accounts (u9) add none
    got = {(r["account_id"], r["date"]): (r[LABEL], r[PATTERNS], r["f0"]) for r in table.to_dicts()}
    assert got == {("u1", D1): (1, "spoofing", 0.0), ("u2", D1): (0, None, 1.0), ("u3", D1): (0, None, 2.0),
                   ("u1", D2): (0, None, 3.0), ("u2", D2): (1, "wash_trading", 4.0), ("u3", D2): (0, None, 5.0)}
    assert table.schema[LABEL] == pl.Int8


def test_categorical_account_ids_join_too():
    table = build_training_set(features().with_columns(pl.col("account_id").cast(pl.Categorical)),
                               labels(("spoofing", "u3", at(D2, 10), at(D2, 11))))
    assert table.filter(pl.col(LABEL) == 1).select("account_id", "date").rows() == [("u3", D2)]


def test_without_labels_the_label_is_null():
    table = build_training_set(features(), None)
    assert table.height == 6
    assert table.get_column(LABEL).null_count() == 6
    assert table.get_column(PATTERNS).null_count() == 6
    assert table.schema[LABEL] == pl.Int8


def test_empty_labels_make_every_row_ordinary():
    table = build_training_set(features(), labels())
    assert table.get_column(LABEL).to_list() == [0] * 6


def test_training_set_needs_rows_and_key_columns():
    with pytest.raises(TrainingDataError):
        build_training_set(features().clear(), None)
    with pytest.raises(TrainingDataError, match="date"):
        build_training_set(features().drop("date"), None)


# -- split_by_time -----------------------------------------------------------------------------------------------

def day_table(counts: list[int]) -> pl.DataFrame:
    """`counts[i]` account-days on day i, in shuffled row order."""
    rows = [{"account_id": f"a{k}", "date": D1 + timedelta(days=i), "f0": 1.0}
            for i, n in enumerate(counts) for k in range(n)]
    return pl.DataFrame(rows).sample(fraction=1.0, shuffle=True, seed=1)


def test_twenty_equal_days_split_14_3_3_in_time_order():
    table, days = split_by_time(day_table([5] * 20))
    assert (len(days.train), len(days.validation), len(days.test)) == (14, 3, 3)
    assert max(days.train) < min(days.validation) <= max(days.validation) < min(days.test)
    all_days = days.train + days.validation + days.test
    assert list(all_days) == sorted(all_days) == [D1 + timedelta(days=i) for i in range(20)]
    assert len(set(all_days)) == 20


def test_every_row_gets_the_split_of_its_day():
    table, days = split_by_time(day_table([5] * 20))
    assert table.height == 100
    assert table.get_column(SPLIT).null_count() == 0
    per_day = table.group_by("date").agg(pl.col(SPLIT).unique())
    assert all(len(s) == 1 for s in per_day.get_column(SPLIT).to_list())  # no day in two splits
    for name in ("train", "validation", "test"):
        assert set(table.filter(pl.col(SPLIT) == name).get_column("date").to_list()) == set(getattr(days, name))
    assert days.as_dict()["test"] == [d.isoformat() for d in days.test]


def test_cuts_follow_the_share_of_account_days_not_of_days():
    # 10 days; the last one holds 91 of 100 account-days: the cuts are as near 70 / 85 as whole days allow,
    # and every split keeps a day.
    _, days = split_by_time(day_table([1] * 9 + [91]))
    assert (len(days.train), len(days.validation), len(days.test)) == (8, 1, 1)


def test_three_days_give_one_day_per_split():
    _, days = split_by_time(day_table([4, 4, 4]))
    assert (days.train, days.validation, days.test) == ((D1,), (D2,), (D3,))


def test_fewer_than_three_days_cannot_be_split():
    with pytest.raises(TrainingDataError, match="3 days"):
        split_by_time(day_table([10, 10]))


def test_shares_must_leave_room_for_a_test_split():
    with pytest.raises(TrainingDataError):
        split_by_time(day_table([5] * 5), train_share=0.8, validation_share=0.2)

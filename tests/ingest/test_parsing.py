from datetime import datetime, timezone

import polars as pl
import pytest

from surveillance_pipeline.ingest.parsing import parse_number, parse_timestamp

UTC = timezone.utc


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2019-10-17T18:03:41.133Z", datetime(2019, 10, 17, 18, 3, 41, 133000, UTC)),
        ("2024-01-01 00:00:00", datetime(2024, 1, 1, tzinfo=UTC)),  # naive = UTC
        ("2024-01-01T00:00:00+02:00", datetime(2023, 12, 31, 22, 0, tzinfo=UTC)),
        ("2024-01-01T00:00:00.123456", datetime(2024, 1, 1, 0, 0, 0, 123456, UTC)),
        ("2024-01-01T00:00:00.123456789-05:30", datetime(2024, 1, 1, 5, 30, 0, 123456, UTC)),
        ("2024-01-01 00:00:00.5 +0100", datetime(2023, 12, 31, 23, 0, 0, 500000, UTC)),
        ("2024-01-01T00:00:00 UTC", datetime(2024, 1, 1, tzinfo=UTC)),
        ("2024-01-01", datetime(2024, 1, 1, tzinfo=UTC)),
        ("1672531436", datetime(2023, 1, 1, 0, 3, 56, tzinfo=UTC)),  # seconds
        ("1672531436.5", datetime(2023, 1, 1, 0, 3, 56, 500000, UTC)),
        ("1571335421133", datetime(2019, 10, 17, 18, 3, 41, 133000, UTC)),  # milliseconds
        ("1582329602111000", datetime(2020, 2, 22, 0, 0, 2, 111000, UTC)),  # microseconds
        ("1582329602111000123", datetime(2020, 2, 22, 0, 0, 2, 111000, UTC)),  # nanoseconds
        (" 1672531436 ", datetime(2023, 1, 1, 0, 3, 56, tzinfo=UTC)),
    ],
)
def test_timestamps_are_parsed_to_utc(text, expected):
    parsed = pl.DataFrame({"t": [text]}).select(parse_timestamp(pl.col("t"))).item()
    assert parsed == expected


@pytest.mark.parametrize("text", ["garbage", "2024-01-01T25:00:00", "2024-13-01", "", None, "12:00"])
def test_unparsable_timestamps_are_null(text):
    frame = pl.DataFrame({"t": [text]}, schema={"t": pl.String})
    assert frame.select(parse_timestamp(pl.col("t"))).item() is None


def test_numbers():
    values = ["1", "1.5", "-2", "1e-5", ".5", "abc", "", "1,5", "nan", "inf", None]
    parsed = pl.DataFrame({"n": values}, schema={"n": pl.String}).select(parse_number(pl.col("n"))).to_series()
    assert parsed.to_list() == [1.0, 1.5, -2.0, 1e-5, 0.5, None, None, None, None, None, None]


def test_column_parser_matches_the_general_parser_on_mixed_columns():
    from surveillance_pipeline.ingest.parsing import parse_timestamp_column

    iso = ["2024-03-01T10:00:00.5Z"] * 70 + ["2024-03-01 10:00:00+02:00", "1709287200", "junk", "", None]
    epoch = ["1709287200123"] * 70 + ["2024-03-01T10:00:00Z", "1709287200.5", "junk"]
    for values in (iso, epoch):
        series = pl.Series("t", values, dtype=pl.String)
        expected = series.to_frame().select(parse_timestamp(pl.col("t"))).to_series()
        assert parse_timestamp_column(series).to_list() == expected.to_list()


@pytest.mark.parametrize("values", [
    [" 2024-03-01T10:00:00Z "] * 100 + ["2024-03-01T10:00:00Z", "", "  ", None, "junk", "1709287200"],  # padded
    [""] * 2000 + ["1709287200123"] * 10 + [" 1709287200 ", "x"],  # no sample among the first values
    ["1709287200123456"] * 100 + ["+1709287200", "-5", "1709287200.5", "2024-03-01", "99999999999999999",
                                  "100000000000000000", "9223372036854775808"],  # around the magnitudes
    [None] * 10,
])
def test_column_parser_matches_the_general_parser_on_awkward_columns(values):
    from surveillance_pipeline.ingest.parsing import parse_timestamp_column

    series = pl.Series("t", values, dtype=pl.String)
    expected = series.to_frame().select(parse_timestamp(pl.col("t"))).to_series()
    parsed = parse_timestamp_column(series)
    assert parsed.dtype == expected.dtype and parsed.to_list() == expected.to_list()


@pytest.mark.parametrize("values", [["1", "2.5", "-3e2", None, "nan", "inf"], ["1", " 2 ", "", "abc", None, ".5"]])
def test_number_column_matches_the_number_parser(values):
    from surveillance_pipeline.ingest.parsing import parse_number_column

    series = pl.Series("n", values, dtype=pl.String)
    expected = series.to_frame().select(parse_number(pl.col("n"))).to_series()
    assert parse_number_column(series).to_list() == expected.to_list()

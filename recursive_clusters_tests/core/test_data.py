"""Tests for loading and preparing the input table: every error path names what is at fault."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recursive_clusters.core.data import FeaturePreprocessor, InputError, fingerprint_frame, prepare
from recursive_clusters.core.settings import InputSettings, Settings
from recursive_clusters.io.tables import load_demo_digits, load_table


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": ["a", "b", "c", "d", "e"],
            "x": [1.0, 2.0, 3.0, 4.0, 5.0],
            "y": [10, 0, 10, 0, 5],
            "flag": [True, False, True, True, False],
            "label": ["p", "q", "p", "q", "p"],
        }
    )


def _settings(**kwargs: object) -> InputSettings:
    return InputSettings(id_column="id", profile_columns=["label"], **kwargs)


# --- loading -------------------------------------------------------------------------------


def test_demo_digits_shape_and_columns() -> None:
    demo = load_demo_digits()
    assert demo.shape == (1797, 66)
    assert demo.columns[0] == "digit_id" and demo.columns[-1] == "digit"
    assert list(demo.columns[1:3]) == ["pixel_0_0", "pixel_0_1"]
    assert demo.columns[-2] == "pixel_7_7"
    assert demo["digit_id"].tolist() == list(range(1797))
    assert load_table(InputSettings()).shape == (1797, 66)


def test_demo_settings_select_the_64_pixels() -> None:
    prepared = prepare(load_demo_digits(), Settings().input)
    # the always-zero corner pixels are dropped as constant
    assert prepared.report["n_features"] + len(prepared.report["dropped_constant_columns"]) == 64
    assert all(c.startswith("pixel_") for c in prepared.features.columns)
    assert list(prepared.profile.columns) == ["digit"]
    assert prepared.ids.name == "digit_id"


def test_load_parquet_and_csv(tmp_path, frame) -> None:
    parquet = tmp_path / "table.parquet"
    frame.to_parquet(parquet)
    pd.testing.assert_frame_equal(load_table(InputSettings(path=str(parquet))), frame)
    csv = tmp_path / "table.CSV"
    frame.to_csv(csv, index=False)
    pd.testing.assert_frame_equal(load_table(InputSettings(path=str(csv))), frame)


def test_load_from_urls_pyarrow_or_fsspec_filesystems(tmp_path, frame) -> None:
    """file:// goes through pyarrow's own filesystems (as s3:// and gs:// do); memory://
    through fsspec (as az:// or https:// would): object storage needs no local copy."""
    import fsspec

    frame.to_parquet(tmp_path / "table.parquet")
    local_url = (tmp_path / "table.parquet").as_uri()
    pd.testing.assert_frame_equal(load_table(InputSettings(path=local_url)), frame)
    memory = fsspec.filesystem("memory")
    with memory.open("/bucket/table.parquet", "wb") as stream:
        frame.to_parquet(stream)
    with memory.open("/bucket/table.csv", "w") as stream:
        frame.to_csv(stream, index=False)
    try:
        for name in ("table.parquet", "table.csv"):
            url = f"memory://bucket/{name}"
            pd.testing.assert_frame_equal(load_table(InputSettings(path=url)), frame)
        with pytest.raises(InputError, match=r"Could not read input file 'memory://bucket/no"):
            load_table(InputSettings(path="memory://bucket/nothing.parquet"))
        with pytest.raises(InputError, match=r"'nosuchscheme://b/t.parquet'"):
            load_table(InputSettings(path="nosuchscheme://b/t.parquet"))
    finally:
        memory.rm("/bucket", recursive=True)


def test_load_parquet_keeps_a_named_index_as_column(tmp_path, frame) -> None:
    parquet = tmp_path / "indexed.parquet"
    frame.set_index("id").to_parquet(parquet)
    assert "id" in load_table(InputSettings(path=str(parquet))).columns


def test_load_duckdb_with_odd_table_name(tmp_path, frame) -> None:
    path = tmp_path / "it's data.duckdb"
    odd = 'my "odd" table ünï'
    with duckdb.connect(str(path)) as connection:
        connection.register("frame_view", frame)
        connection.execute(f'CREATE TABLE "{odd.replace(chr(34), chr(34) * 2)}" AS FROM frame_view')
        connection.execute("CREATE TABLE other AS SELECT 1 AS a")
    loaded = load_table(InputSettings(path=str(path), table=odd))
    pd.testing.assert_frame_equal(loaded, frame, check_dtype=False)
    with pytest.raises(InputError, match=r"nope.*'other'"):
        load_table(InputSettings(path=str(path), table="nope"))
    with pytest.raises(InputError, match=r"input.table"):
        load_table(InputSettings(path=str(path)))


def test_load_errors(tmp_path, frame) -> None:
    with pytest.raises(InputError, match=r"missing.parquet"):
        load_table(InputSettings(path=str(tmp_path / "missing.parquet")))
    with pytest.raises(InputError, match=r"\.xlsx.*\.parquet, \.csv, \.duckdb, \.db"):
        load_table(InputSettings(path=str(tmp_path / "table.xlsx")))
    parquet = tmp_path / "t.parquet"
    frame.to_parquet(parquet)
    with pytest.raises(InputError, match=r"input.table"):
        load_table(InputSettings(path=str(parquet), table="t"))
    broken = tmp_path / "broken.parquet"
    broken.write_text("not parquet")
    with pytest.raises(InputError, match=r"broken.parquet"):
        load_table(InputSettings(path=str(broken)))
    not_duckdb = tmp_path / "sqlite.db"
    not_duckdb.write_text("not duckdb")
    with pytest.raises(InputError, match=r"sqlite.db"):
        load_table(InputSettings(path=str(not_duckdb), table="t"))


def test_csv_duplicate_header_is_refused(tmp_path) -> None:
    csv = tmp_path / "dup.csv"
    csv.write_text("a,b,a\n1,2,3\n")
    with pytest.raises(InputError, match=r"'a'"):
        load_table(InputSettings(path=str(csv)))
    # a genuine "a.1" column next to "a" is not a duplicate
    csv.write_text("a,a.1\n1,2\n")
    assert list(load_table(InputSettings(path=str(csv))).columns) == ["a", "a.1"]


# --- prepare: validation ---------------------------------------------------------------------


def test_row_count_errors(frame) -> None:
    with pytest.raises(InputError, match=r"empty"):
        prepare(frame.iloc[:0], _settings())
    with pytest.raises(InputError, match=r"need at least 2 rows"):
        prepare(frame.iloc[:1], _settings())


def test_duplicate_column_names(frame) -> None:
    doubled = pd.concat([frame, frame[["x"]]], axis=1)
    with pytest.raises(InputError, match=r"'x'"):
        prepare(doubled, _settings())


def test_id_errors(frame) -> None:
    with pytest.raises(InputError, match=r"'nope'.*available: 'id', 'x'"):
        prepare(frame, InputSettings(id_column="nope"))
    nulls = frame.assign(id=["a", None, "c", None, "e"])
    with pytest.raises(InputError, match=r"'id' has 2 null.*row position 1"):
        prepare(nulls, _settings())
    dups = frame.assign(id=["a", "b", "a", "d", "a"])
    with pytest.raises(InputError, match=r"'id' is not unique.*'a' appears 3 times"):
        prepare(dups, _settings())


def test_missing_id_becomes_row_number(frame) -> None:
    prepared = prepare(frame.drop(columns="id"), InputSettings(profile_columns=["label"]))
    assert prepared.ids.name == "row_id"
    assert prepared.ids.tolist() == [0, 1, 2, 3, 4]


def test_feature_column_errors(frame) -> None:
    with pytest.raises(InputError, match=r"\['nope', 'gone'\].*input.feature_columns"):
        prepare(frame, _settings(feature_columns=["x", "nope", "gone"]))
    with pytest.raises(InputError, match=r"'label' \(text\)"):
        prepare(frame, InputSettings(id_column="id", feature_columns=["x", "label"]))
    with pytest.raises(InputError, match=r"'id'.*input.feature_columns"):
        prepare(frame, InputSettings(id_column="id", feature_columns=["x", "id"]))
    with pytest.raises(InputError, match=r"\['y'\].*both"):
        prepare(
            frame, InputSettings(id_column="id", feature_columns=["x", "y"], profile_columns=["y"])
        )
    with pytest.raises(InputError, match=r"\['nope'\].*input.profile_columns"):
        prepare(frame, InputSettings(id_column="id", profile_columns=["label", "nope"]))
    with pytest.raises(InputError, match=r"No numeric feature columns"):
        prepare(frame[["id", "label"]], _settings())


def test_default_features_are_numeric_and_bool(frame) -> None:
    prepared = prepare(frame, _settings())
    assert list(prepared.features.columns) == ["x", "y", "flag"]
    assert prepared.features["flag"].tolist() == [1.0, 0.0, 1.0, 1.0, 0.0]
    assert prepared.matrix.dtype == np.float64
    assert prepared.ids.tolist() == ["a", "b", "c", "d", "e"]
    assert prepared.profile["label"].tolist() == ["p", "q", "p", "q", "p"]


def test_constant_columns_are_dropped(frame) -> None:
    raw = frame.assign(const=7.0, empty=np.nan)
    prepared = prepare(raw, _settings())
    assert prepared.report["dropped_constant_columns"] == ["const", "empty"]
    assert list(prepared.features.columns) == ["x", "y", "flag"]
    assert prepared.report["n_features"] == 3
    with pytest.raises(InputError, match=r"(?i)all feature columns are constant.*'const'"):
        prepare(raw, _settings(feature_columns=["const", "empty"]))


# --- prepare: non-finite policies ------------------------------------------------------------


@pytest.fixture
def holes(frame) -> pd.DataFrame:
    return frame.assign(x=[1.0, np.nan, 3.0, np.inf, 5.0], y=[10, 0, 10, 0, 5])


def test_non_finite_error_names_column_count_and_row(holes) -> None:
    with pytest.raises(InputError, match=r"'x' \(2 values\).*row position 1"):
        prepare(holes, _settings())


def test_non_finite_drop(holes) -> None:
    prepared = prepare(holes, _settings(non_finite="drop"))
    assert prepared.report["rows_in"] == 5
    assert prepared.report["rows_kept"] == 3
    assert prepared.report["rows_dropped_non_finite"] == 2
    assert prepared.report["non_finite_by_column"] == {"x": 2}
    assert prepared.ids.tolist() == ["a", "c", "e"]
    assert prepared.profile.index.tolist() == [0, 1, 2]
    assert prepared.matrix.shape == (3, 3)
    with pytest.raises(InputError, match=r"leaves 1 of 5 rows"):
        prepare(holes.assign(y=[np.nan, 1, np.nan, 2, 3]), _settings(non_finite="drop"))


def test_non_finite_drop_keeps_mask_and_columns_consistent() -> None:
    # dropping the NaN rows makes "c" constant; dropping "c" must not change the mask
    raw = pd.DataFrame({"a": [1.0, np.nan, 3.0, 4.0], "b": [1.0, 2.0, 1.0, 2.0]})
    raw["c"] = [5.0, 6.0, 5.0, 5.0]
    prepared = prepare(raw, InputSettings(non_finite="drop"))
    assert prepared.report["dropped_constant_columns"] == ["c"]
    matrix, kept = prepared.preprocessor.transform(raw)
    np.testing.assert_array_equal(matrix, prepared.matrix)
    assert kept.tolist() == [True, False, True, True]


def test_non_finite_impute(holes) -> None:
    prepared = prepare(holes, _settings(non_finite="impute"))
    assert prepared.report["values_imputed"] == 2
    assert prepared.report["rows_kept"] == 5
    assert prepared.features["x"].tolist() == [1.0, 3.0, 3.0, 3.0, 5.0]
    assert np.isfinite(prepared.matrix).all()


# --- standardisation and the preprocessor ----------------------------------------------------


def test_standardisation(frame) -> None:
    prepared = prepare(frame, _settings(standardize=True))
    np.testing.assert_allclose(prepared.matrix.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(prepared.matrix.std(axis=0), 1.0)
    assert prepared.features["x"].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]  # before scaling
    unscaled = prepare(frame, _settings())
    assert unscaled.preprocessor.means is None
    np.testing.assert_array_equal(unscaled.matrix, unscaled.features.to_numpy())


@pytest.mark.parametrize("policy", ["drop", "impute"])
def test_preprocessor_json_round_trip_reproduces_matrix(holes, policy) -> None:
    prepared = prepare(holes.assign(const=1), _settings(non_finite=policy, standardize=True))
    restored = FeaturePreprocessor.from_json(prepared.preprocessor.to_json())
    assert restored == prepared.preprocessor
    matrix, kept = restored.transform(holes)
    np.testing.assert_array_equal(matrix, prepared.matrix)
    assert int(kept.sum()) == prepared.report["rows_kept"]


def test_transform_validates_columns(frame) -> None:
    preprocessor = prepare(frame, _settings()).preprocessor
    with pytest.raises(InputError, match=r"\['x', 'flag'\]"):
        preprocessor.transform(frame.drop(columns=["x", "flag"]))
    with pytest.raises(InputError, match=r"'y' \(text\)"):
        preprocessor.transform(frame.assign(y="text"))
    with pytest.raises(InputError, match=r"'x'.*row position 2"):
        preprocessor.transform(frame.assign(x=[1.0, 2.0, np.nan, 4.0, 5.0]))


# --- fingerprint -----------------------------------------------------------------------------


def test_fingerprint_is_stable_and_sensitive(frame) -> None:
    first = fingerprint_frame(frame)
    assert len(first) == 16 and int(first, 16) >= 0
    assert fingerprint_frame(frame.copy()) == first
    changed = frame.copy()
    changed.loc[2, "x"] = 3.5
    assert fingerprint_frame(changed) != first
    assert fingerprint_frame(frame.rename(columns={"x": "z"})) != first
    assert fingerprint_frame(frame[list(reversed(frame.columns))]) != first


# --- property test ---------------------------------------------------------------------------

_cell = st.one_of(st.floats(-1e6, 1e6), st.just(np.nan), st.just(np.inf))


@st.composite
def _tables(draw: st.DrawFn) -> pd.DataFrame:
    n_rows = draw(st.integers(0, 8))
    n_cols = draw(st.integers(1, 4))
    data = {f"f{j}": draw(st.lists(_cell, min_size=n_rows, max_size=n_rows)) for j in range(n_cols)}
    data["label"] = [f"row {i}" for i in range(n_rows)]
    return pd.DataFrame(data)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=_tables(), standardize=st.booleans())
def test_prepare_drop_property(raw: pd.DataFrame, standardize: bool) -> None:
    config = InputSettings(profile_columns=["label"], non_finite="drop", standardize=standardize)
    try:
        prepared = prepare(raw, config)
    except InputError:
        return
    assert np.isfinite(prepared.matrix).all()
    assert prepared.matrix.shape[0] == len(prepared.ids) == len(prepared.profile) >= 2
    assert prepared.matrix.shape == prepared.features.shape
    kept_labels = raw["label"][prepared.preprocessor.transform(raw)[1]].tolist()
    assert prepared.profile["label"].tolist() == kept_labels


def test_standardize_auto_scales_mixed_units_and_keeps_one_shared_scale() -> None:
    rng = np.random.default_rng(0)
    songs = pd.DataFrame(
        {
            "streams": rng.lognormal(18, 1, 300),  # ~1e8
            "tempo": rng.normal(120, 20, 300),
            "danceability": rng.uniform(0, 1, 300),
            "energy": rng.uniform(0, 1, 300),
        }
    )
    prepared = prepare(songs, InputSettings())
    assert prepared.report["standardized"] is True
    assert "different scales" in prepared.report["standardize_reason"]
    assert np.allclose(prepared.matrix.std(axis=0), 1.0, atol=1e-3)

    pixels = pd.DataFrame(
        rng.integers(0, 256, size=(300, 16)), columns=[f"p{i}" for i in range(16)]
    )
    prepared = prepare(pixels, InputSettings())
    assert prepared.report["standardized"] is False
    assert "one scale" in prepared.report["standardize_reason"]
    assert np.array_equal(prepared.matrix, pixels.to_numpy(dtype=prepared.matrix.dtype))

    forced = prepare(pixels, InputSettings(standardize=True))
    assert forced.report["standardized"] is True


def test_numbers_as_text_and_decimals_are_used_and_reported_not_dropped() -> None:
    from decimal import Decimal

    frame = pd.DataFrame(
        {
            "streams": ["1,234,567", "2,000", "999", "12,345.5"],
            "price": [Decimal("1.50"), Decimal("2.25"), None, Decimal("4.00")],
            "plain_text_number": ["1.5", "-2", "3e2", ".5"],
            "decimal_comma": ["1,5", "2,25", "3,0", "4,75"],  # ambiguous: not taken
            "key": ["B", "C#", "A", "B"],
            "x": [1.0, 2.0, 3.0, 4.0],
        }
    )
    prepared = prepare(frame, InputSettings(non_finite="impute"))
    assert list(prepared.features.columns) == ["streams", "price", "plain_text_number", "x"]
    assert prepared.features["streams"].tolist() == [1234567.0, 2000.0, 999.0, 12345.5]
    assert prepared.report["skipped_columns"] == {"decimal_comma": "text", "key": "text"}
    assert prepared.report["converted_columns"] == {
        "streams": "numbers stored as text with thousands separators",
        "price": "DECIMAL values",
        "plain_text_number": "numbers stored as text",
    }

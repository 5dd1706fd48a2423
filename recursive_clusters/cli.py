"""`recursive-clusters`: run the demo or your own data through the Dagster pipeline, export
the assignments, and open the Dagster UI on the same instance."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

DEFAULT_HOME = Path(".dagster_home")


def _settings_for_run(args: argparse.Namespace):
    """Settings from ``--config`` with the input options of the command line on top."""
    from recursive_clusters.core.settings import parse_settings, read_settings_file

    data = read_settings_file(args.config)
    if args.command == "demo":
        data.pop("input", None)
    overrides = {
        "path": getattr(args, "input", None),
        "table": getattr(args, "table", None),
        "id_column": getattr(args, "id_column", None),
        "feature_columns": _split(getattr(args, "feature_columns", None)),
        "profile_columns": _split(getattr(args, "profile_columns", None)),
    }
    given = {key: value for key, value in overrides.items() if value is not None}
    if given:
        data["input"] = {**(data.get("input") or {}), **given}
    if getattr(args, "max_depth", None) is not None:  # 0 too: refused by the same validation
        data["recursion"] = {**(data.get("recursion") or {}), "max_depth": args.max_depth}
    return parse_settings(data, source="settings")


def _split(value: str | None) -> list[str] | None:
    return [part.strip() for part in value.split(",") if part.strip()] if value else None


def _code_location(settings):
    """The Dagster definitions for ``settings``, written to a settings file under the
    storage so that the UI (``ui --config``) launches the same trees; and that file."""
    from recursive_clusters.defs.definitions import build_definitions
    from recursive_clusters.defs.resources import TreeStoreResource

    storage = TreeStoreResource()
    storage.store()  # refuses a storage path that names a file, naming the variable
    settings_file = storage.store().settings_file(settings)
    settings_file.parent.mkdir(parents=True, exist_ok=True)
    settings_file.write_text(yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False))
    storage = TreeStoreResource(base_dir=storage.base_dir, settings_path=str(settings_file))
    return build_definitions(settings, storage), storage.store(), settings_file


def _published(store, tree_id: str) -> dict:
    """The tree's manifest; an error naming why when it was not published."""
    from recursive_clusters.io.store import REPORT_HTML, StorageError

    manifest = store.manifest(tree_id)
    if manifest.get("status") != "complete":
        raise StorageError(
            f"Tree {tree_id} was not published: {manifest.get('failure', 'unknown')}; the "
            f"current tree stays {store.current() or 'none'} "
            f"(report of the new tree: {store.tree_dir(tree_id) / REPORT_HTML})"
        )
    return manifest


def _run_tree(args: argparse.Namespace) -> int:
    from recursive_clusters.defs.runner import ensure_dagster_home, grow_tree, open_instance

    if getattr(args, "drift", False):
        return _demo_drift(args)
    settings = _settings_for_run(args)
    home = ensure_dagster_home(DEFAULT_HOME)
    defs, store, settings_file = _code_location(settings)
    print(f"Growing the tree of {settings.input.path or 'the built-in digits demo'} ...")
    with open_instance() as instance:
        tree_id = grow_tree(instance, defs, settings.recursion.max_depth)
    _print_tree(store, tree_id, settings_file, home)
    return 0


def _print_tree(store, tree_id: str, settings_file: Path, home: Path) -> None:
    from recursive_clusters.defs.resources import SETTINGS_ENV
    from recursive_clusters.io.store import ASSIGNMENTS_TABLE, FEATURES_REPORT_JSON, REPORT_HTML

    manifest = _published(store, tree_id)
    print(
        f"\nTree {tree_id}: {manifest.get('n_nodes')} clustered nodes, "
        f"{manifest.get('n_leaves')} leaves, noise groups: {manifest.get('n_noise_groups', 0)}, "
        f"{manifest.get('noise_fraction', 0):.1%} noise.\n"
        f"  report:      {store.tree_dir(tree_id) / REPORT_HTML}\n"
        f"  assignments: {store.table_path(tree_id, ASSIGNMENTS_TABLE)}\n"
        f"  tree files:  {store.tree_dir(tree_id)}\n"
        f"  DuckDB:      {store.catalog_path}  (e.g. SELECT leaf_path, count(*) FROM "
        "assignments GROUP BY 1)\n"
        f"  Dagster UI:  recursive-clusters ui --config {settings_file}\n"
        f"               (or: DAGSTER_HOME={home} {SETTINGS_ENV}={settings_file} "
        "dagster dev -w workspace.yaml)"
    )
    prepared = json.loads(store.read_text(tree_id, FEATURES_REPORT_JSON))
    for line in feature_lines(prepared):
        print(line)
    root = store.node_record(tree_id, "root") or {}
    print(f"Root: {root.get('reason', 'not clustered')}")


def _demo_drift(args: argparse.Namespace) -> int:
    """The loop a team runs every day, on the digits: a tree that never saw the 9s, a quiet
    batch, a batch with 9s that drifts, and the re-clustering it launches."""
    from recursive_clusters.core.settings import parse_settings
    from recursive_clusters.defs.keys import TRIGGER_TAG
    from recursive_clusters.defs.resources import TreeStoreResource
    from recursive_clusters.defs.runner import (
        ensure_dagster_home,
        grow_tree,
        open_instance,
        score_new_batches,
    )
    from recursive_clusters.demo import HELD_OUT_DIGIT, write_demo_batches, write_drift_demo
    from recursive_clusters.io.store import ASSIGNMENTS_TABLE, COMPARISON_JSON

    home = ensure_dagster_home(DEFAULT_HOME)
    directory = TreeStoreResource().store().demo_drift_dir
    raw = write_drift_demo(directory)
    if args.max_depth is not None:
        raw["recursion"] = {"max_depth": args.max_depth}
    settings = parse_settings(raw, source="drift demo settings")
    defs, store, settings_file = _code_location(settings)
    depth = settings.recursion.max_depth
    with open_instance() as instance:
        print(f"1/3 The first tree: the digits without the {HELD_OUT_DIGIT}s ...")
        first = grow_tree(instance, defs, depth)
        _published(store, first)
        _, new_ids = write_demo_batches(directory)
        print(f"2/3 Two batches arrive in {directory / 'batches'}; tree {first} scores them:")
        asked = score_new_batches(instance, defs)
        asked += score_new_batches(instance, defs)  # the next tick reads the drifting streak
        if not asked:
            print("No batch drifted: no re-clustering.")
            _print_tree(store, first, settings_file, home)
            return 0
        (request,) = asked
        print(f"3/3 Re-clustering the input plus the batches ({request.tags[TRIGGER_TAG]}) ...")
        second = grow_tree(instance, defs, depth, launch_tags=request.tags)
    _print_tree(store, second, settings_file, home)
    assignments = store.read_table(second, ASSIGNMENTS_TABLE).set_index("digit_id")
    leaves = assignments.loc[new_ids, "leaf_path"].value_counts()
    comparison = json.loads(store.read_text(second, COMPARISON_JSON))
    print(
        f"The {len(new_ids)} {HELD_OUT_DIGIT}s of the drifting batch: {leaves.iloc[0]} in leaf "
        f"{leaves.index[0]}, which holds "
        f"{leaves.iloc[0] / (assignments['leaf_path'] == leaves.index[0]).sum():.0%} "
        f"{HELD_OUT_DIGIT}s. ARI with the previous tree on the rows both hold: "
        f"{comparison['ari']:.3f}. Scores of every batch: the scored_rows view in DuckDB."
    )
    return 0


def feature_lines(report: dict) -> list[str]:
    """What was clustered on, and what was left out or converted, with why."""
    lines = [f"Features: {report['n_features']} columns, {report['standardize_reason']}."]
    for title, key in (("skipped", "skipped_columns"), ("converted", "converted_columns")):
        named = report.get(key) or {}
        if named:
            shown = ", ".join(f"{column!r} ({why})" for column, why in named.items())
            lines.append(f"  {title}: {shown}")
    dropped = report.get("dropped_constant_columns") or []
    if dropped:
        lines.append(f"  skipped as constant: {', '.join(map(repr, dropped))}")
    return lines


def _export(args: argparse.Namespace) -> int:
    from recursive_clusters.defs.resources import TreeStoreResource
    from recursive_clusters.defs.runner import ensure_dagster_home
    from recursive_clusters.io.store import ASSIGNMENTS_TABLE, output_directory

    ensure_dagster_home(DEFAULT_HOME)
    store = TreeStoreResource().store()
    tree_id = store.require_current()
    target = output_directory(args.output, "--output") / "assignments.parquet"
    shutil.copyfile(store.table_path(tree_id, ASSIGNMENTS_TABLE), target)
    print(f"Wrote {target} (tree {tree_id})")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from recursive_clusters.core.settings import InputSettings
    from recursive_clusters.defs.resources import TreeStoreResource
    from recursive_clusters.defs.runner import ensure_dagster_home
    from recursive_clusters.io.store import output_file, write_parquet
    from recursive_clusters.trees.scoring import score_file

    ensure_dagster_home(DEFAULT_HOME)
    store = TreeStoreResource().store()
    target = output_file(args.output, "--output", inputs=[args.input])
    scores = score_file(store, InputSettings(path=args.input, table=args.table))
    write_parquet(target, scores)
    confident = scores["confident"].mean() if len(scores) else 0.0
    left_out = scores.attrs["rows_in"] - len(scores)
    print(
        f"Scored {len(scores)} rows with tree {scores.attrs['tree_id']} "
        f"({confident:.1%} confident to a leaf) -> {args.output}"
        + (
            f"; {left_out} of {scores.attrs['rows_in']} rows left out: a NaN/inf feature "
            f"value under the tree's input.non_finite {scores.attrs['non_finite']!r}"
            if left_out
            else ""
        )
    )
    return 0


def _report(args: argparse.Namespace) -> int:
    from recursive_clusters.defs.resources import TreeStoreResource
    from recursive_clusters.defs.runner import ensure_dagster_home
    from recursive_clusters.report import write_report
    from recursive_clusters.trees.names import names_warnings, rename_tree

    ensure_dagster_home(DEFAULT_HOME)
    store = TreeStoreResource().store()
    tree_id = store.require_current()
    names = rename_tree(store, tree_id)  # names.yaml may have changed since publishing
    previous = store.manifest(tree_id).get("previous_generation")
    for warning in names_warnings(store, tree_id, names, previous):
        print(f"warning: {warning}", file=sys.stderr)
    target = write_report(store, tree_id)
    if args.output:
        shutil.copyfile(target, args.output)
        target = Path(args.output)
    print(f"Report: {target}")
    return 0


def _config(args: argparse.Namespace) -> int:
    from recursive_clusters.core.settings import settings_template

    print(settings_template(), end="")
    return 0


def _ui(args: argparse.Namespace) -> int:
    from recursive_clusters.defs.resources import SETTINGS_ENV
    from recursive_clusters.defs.runner import ensure_dagster_home

    home = ensure_dagster_home(DEFAULT_HOME)
    env = dict(os.environ)
    if args.config:
        env[SETTINGS_ENV] = str(Path(args.config).resolve())
    command = [
        sys.executable, "-m", "dagster", "dev", "-m", "recursive_clusters.defs.definitions",
        "--host", args.host, "--port", str(args.port),
    ]  # fmt: skip
    print(f"Dagster UI on http://{args.host}:{args.port} (DAGSTER_HOME={home}); Ctrl+C stops it.")
    return subprocess.call(command, env=env)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recursive-clusters",
        description="Recursive UMAP + HDBSCAN clustering as Dagster assets. Runs use "
        "$DAGSTER_HOME (default ./.dagster_home); tree files go to "
        "$DAGSTER_HOME/recursive_clusters unless $RECURSIVE_CLUSTERS_STORAGE is set.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="Grow the tree of the built-in 8x8 digits (offline).")
    demo.add_argument("--config", help="YAML settings file (its input section is ignored).")
    demo.add_argument("--max-depth", type=int, help="Levels of the tree (default 3).")
    demo.add_argument(
        "--drift",
        action="store_true",
        help="Show the batch loop: a tree without the 9s, a quiet batch, a batch with 9s "
        "that drifts, and the re-clustering it launches.",
    )
    demo.set_defaults(handler=_run_tree, input=None)

    run = commands.add_parser("run", help="Grow the tree of your own table.")
    run.add_argument("--input", required=True, help="Parquet, CSV or DuckDB file (or s3:// URL).")
    run.add_argument("--table", help="Table name inside a DuckDB file.")
    run.add_argument("--id-column", help="Unique row id column (default: the row number).")
    run.add_argument(
        "--feature-columns",
        help="Comma-separated columns to cluster on "
        "(default: every numeric column but the id and profile columns).",
    )
    run.add_argument(
        "--profile-columns",
        help="Comma-separated columns carried along for profiles, never clustered on.",
    )
    run.add_argument("--config", help="YAML settings file; see docs/parameters.md.")
    run.add_argument("--max-depth", type=int, help="Levels of the tree (overrides the config).")
    run.set_defaults(handler=_run_tree)

    export = commands.add_parser("export", help="Write assignments.parquet of the current tree.")
    export.add_argument("--output", required=True, help="Directory to write into.")
    export.set_defaults(handler=_export)

    predict = commands.add_parser(
        "predict", help="Assign new rows to the current tree's leaves (no re-clustering)."
    )
    predict.add_argument("--input", required=True, help="Parquet, CSV or DuckDB file.")
    predict.add_argument("--table", help="Table name inside a DuckDB file.")
    predict.add_argument("--output", required=True, help="Parquet file to write the scores to.")
    predict.set_defaults(handler=_predict)

    report = commands.add_parser(
        "report",
        help="Write the current tree's self-contained HTML report again, with the names of "
        "names.yaml (also in its assignments and DuckDB).",
    )
    report.add_argument("--output", help="Also copy the report to this file.")
    report.set_defaults(handler=_report)

    config = commands.add_parser(
        "config", help="Print a settings YAML with every key, its default and its meaning."
    )
    config.set_defaults(handler=_config)

    ui = commands.add_parser("ui", help="Start the Dagster UI and daemon on the same instance.")
    ui.add_argument("--config", help="YAML settings for trees launched from the UI.")
    ui.add_argument("--host", default="127.0.0.1", help="Address to listen on.")
    ui.add_argument("--port", type=int, default=3000, help="Port to listen on.")
    ui.set_defaults(handler=_ui)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a command; any failure ends with one line naming the problem, last, and the full
    traces in a log file whose path is printed just before it."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print(f"error: interrupted; {_current_tree_line()}", file=sys.stderr)
        return 130
    except Exception as exc:
        cause = _user_error(exc)
        log = _write_trace_log()
        if log is not None:
            print(f"details: {log}", file=sys.stderr)
        if cause is None:
            print(f"error: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        print(f"error: {_one_line(cause)}", file=sys.stderr)
        return 2


def _current_tree_line() -> str:
    """Which tree is current, for the line that ends an interrupted command."""
    try:
        from recursive_clusters.defs.resources import TreeStoreResource

        current = TreeStoreResource().store().current()
    except Exception:  # an interrupt must still end with one line
        return "the current tree is unchanged"
    return f"the current tree is still {current}" if current else "no tree is current"


def _one_line(exc: BaseException) -> str:
    """The error's text on one line (a Dagster ``Failure`` keeps it in ``description``)."""
    text = getattr(exc, "description", None) or str(exc)
    return " ".join(text.split())


def _write_trace_log() -> Path | None:
    """The current exception's traceback, in ``$DAGSTER_HOME/logs`` (else the temp dir)."""
    import tempfile
    import time
    import traceback

    name = f"recursive-clusters-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    home = Path(os.environ.get("DAGSTER_HOME") or DEFAULT_HOME)
    for directory in (home / "logs", Path(tempfile.gettempdir())):
        try:
            directory.mkdir(parents=True, exist_ok=True)
            target = directory / name
            target.write_text(traceback.format_exc())
            return target.resolve()
        except OSError:
            continue
    return None


def _user_error(exc: BaseException) -> BaseException | None:
    """The bad-input or bad-settings error behind a (possibly Dagster-wrapped) failure."""
    from dagster import Failure

    from recursive_clusters.core.data import InputError
    from recursive_clusters.core.settings import SettingsError
    from recursive_clusters.io.store import StorageError

    expected = (InputError, SettingsError, StorageError, ValueError, Failure)
    chain = []
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = exc.__cause__
    for link in chain:
        if isinstance(link, expected):
            return link
    for link in chain:  # the file system refused a write: a user can cause that, and fix it
        if isinstance(link, OSError) or _is_sqlite_storage_error(link):
            return _file_system_error(link)
    return None


def _is_sqlite_storage_error(exc: BaseException) -> bool:
    """SQLite (Dagster's run history under $DAGSTER_HOME) could not write its file."""
    text = str(exc).lower()
    return type(exc).__name__ == "OperationalError" and (
        "database or disk is full" in text or "disk i/o error" in text
    )


def _file_system_error(exc: BaseException) -> BaseException:
    """One line naming the path and the OS's reason (no traceback, no SQL)."""
    from recursive_clusters.io.atomic import WriteError, os_reason

    if isinstance(exc, WriteError):
        return exc
    if isinstance(exc, OSError) and exc.filename:
        return OSError(f"{exc.filename}: {os_reason(exc)}")
    if _is_sqlite_storage_error(exc):
        home = Path(os.environ.get("DAGSTER_HOME") or DEFAULT_HOME).resolve()
        full = os_reason(exc) == "no space left on device" or _nearly_full(home)
        reason = "no space left on device" if full else "disk I/O error"
        return OSError(f"Dagster's instance storage under {home} (DAGSTER_HOME): {reason}")
    return OSError(os_reason(exc))


def _nearly_full(directory: Path, margin: int = 16 * 2**20) -> bool:
    """Whether the file system of ``directory`` has less than ``margin`` bytes free."""
    try:
        return shutil.disk_usage(directory).free < margin
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())

"""The results store: one DuckDB file per run directory, the single place a grid writes to.

Schema (``SCHEMA_VERSION`` 3; a schema-1 or -2 store is read as it is and upgraded by the next writer):

- ``meta(key, value)``: schema version, the run's config (JSON) and its fingerprint.
- ``cells(cell_id, kind, objective, seed, budget, mode, adapter_dir, budget_tokens,
  compute_tokens, train_seconds, eval_seconds, device, train_manifest, eval_manifest,
  finished_at, model)``: one row per *finished* cell (``kind`` = ``adapter`` or ``base``; the base
  model is the cell ``base``; in a grid over several models ``model`` is the model's key, its
  cells are ``<key>/...`` and its base cell ``<key>/base``; schema 3). A row exists only once
  everything else of the cell is stored.
- ``metrics(cell_id, axis, metric, group, value, n, ci_low, ci_high, method, status, note,
  p_value, comparison)``: every reported figure with its n and 95% interval.
- ``items(cell_id, axis, group, item_id, prompt, output, score, verdict, scorer, extra)``:
  every evaluated item, so each figure can be traced to the items behind it.
- ``train_log(cell_id, step, examples, budget_tokens, compute_tokens, lr, loss, grad_norm,
  components)``: one row per optimizer step of the cell's training.
- ``verdicts(key, verdict, created_at)``: judge verdicts and translations by content hash
  (``objlab.scoring.cache.cache_key``), written as they arrive, so a resumed or extended grid
  never judges the same answer twice.
- ``failures(cell_id, unit, phase, error_type, message, traceback, failed_at)``: every failed
  attempt at a cell (schema 2). A failed cell has no ``cells`` row, so a re-run retries it;
  its failure rows stay as history.

A cell is recorded in one transaction (its metrics, items, log and finally its ``cells`` row):
a crash leaves either the whole cell or nothing.

Concurrency: DuckDB lets one process open the file to write, or any number to read, never both
at once. The grid therefore opens the store only for the moment of each write and closes it
again, and readers (``objlab results``, ``report``, ``status``) open it read-only for the moment
of their read; ``open`` retries while the other side holds it, and past ``wait_s`` says in one
line which process holds it (``StoreBusy``) instead of raising DuckDB's lock error.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from objlab.errors import StateError, StoreBusy
from objlab.faults import fault_point
from objlab.records.adapter import AdapterManifest, adapter_manifest_json
from objlab.records.evaluation import EvalInfo, eval_info_json
from objlab.records.failure import CellFailure
from objlab.records.items import ItemRecord, MetricRow
from objlab.records.train_log import FIELDS as STEP_FIELDS, StepLog

SCHEMA_VERSION = "3"
READABLE_SCHEMAS = ("1", "2", "3")  # schema 1 has no failures table, 1-2 no cells.model column: a writer adds them
READ_WAIT_S = 30.0  # readers wait this long for a write to finish (writes take well under a second)
WRITE_WAIT_S = 600.0  # the grid waits this long for readers (a report reads for a few seconds)
STORE_FILE = "results.duckdb"
BASE_CELL = "base"

_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS cells (
    cell_id VARCHAR PRIMARY KEY, kind VARCHAR, objective VARCHAR, seed INTEGER, budget BIGINT,
    mode VARCHAR, adapter_dir VARCHAR, budget_tokens BIGINT, compute_tokens BIGINT,
    train_seconds DOUBLE, eval_seconds DOUBLE, device VARCHAR,
    train_manifest JSON, eval_manifest JSON, finished_at TIMESTAMP, model VARCHAR);
CREATE TABLE IF NOT EXISTS metrics (
    cell_id VARCHAR, axis VARCHAR, metric VARCHAR, "group" VARCHAR, value DOUBLE, n BIGINT,
    ci_low DOUBLE, ci_high DOUBLE, method VARCHAR, status VARCHAR, note VARCHAR,
    p_value DOUBLE, comparison VARCHAR);
CREATE TABLE IF NOT EXISTS items (
    cell_id VARCHAR, axis VARCHAR, "group" VARCHAR, item_id VARCHAR, prompt VARCHAR,
    output VARCHAR, score DOUBLE, verdict VARCHAR, scorer VARCHAR, extra JSON);
CREATE TABLE IF NOT EXISTS train_log (
    cell_id VARCHAR, step INTEGER, examples BIGINT, budget_tokens BIGINT, compute_tokens BIGINT,
    lr DOUBLE, loss DOUBLE, grad_norm DOUBLE, components JSON);
CREATE TABLE IF NOT EXISTS verdicts (key VARCHAR PRIMARY KEY, verdict JSON, created_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS failures (
    cell_id VARCHAR, unit VARCHAR, phase VARCHAR, error_type VARCHAR, message VARCHAR,
    traceback VARCHAR, failed_at TIMESTAMP);
"""
_FAILURE_COLUMNS = "cell_id, unit, phase, error_type, message, traceback, failed_at"
_HOLDER = re.compile(r"Conflicting lock is held in (.+?) \(PID (\d+)\)")
_LOG_FIELDS = STEP_FIELDS


def _json(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _lock_holder(message: str) -> str | None:
    """``pid N (program)`` from DuckDB's lock error, or None when the error is not about a lock."""
    if "Could not set lock" not in message:
        return None
    found = _HOLDER.search(message)
    return f"pid {found.group(2)} ({found.group(1)})" if found else "another process"


def _finite(value):
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


class ResultsStore:
    """A run's DuckDB file. One process writes (the grid's driver); readers open it read-only."""

    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.path = Path(path)
        if read_only and not self.path.is_file():
            raise StateError(f"{self.path}: no results store here (run `objlab run` first)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = duckdb.connect(str(self.path), read_only=read_only)
        self._lock = threading.RLock()  # judges call the cache from a thread pool
        found = self.meta("schema_version") if self._has_table("meta") else None
        if found not in (None, *READABLE_SCHEMAS):
            self.db.close()
            raise StateError(f"{self.path}: results store schema {found}, this objlab reads {', '.join(READABLE_SCHEMAS)}")
        if not read_only:
            self.db.execute(_TABLES)  # creates what a new store, or a schema-1 store, lacks
            if not self._has_column("cells", "model"):  # schema 1-2: one model per store
                self.db.execute("ALTER TABLE cells ADD COLUMN model VARCHAR")
            self.set_meta("schema_version", SCHEMA_VERSION)

    @classmethod
    def open(
        cls, path: Path, *, read_only: bool = False, wait_s: float | None = None, on_wait: Callable[[str], None] | None = None
    ) -> ResultsStore:
        """Open ``path``, retrying while another process holds DuckDB's lock on it.

        ``wait_s`` defaults to ``READ_WAIT_S`` for readers and ``WRITE_WAIT_S`` for writers;
        ``on_wait(holder)`` is called once when the first attempt finds the store busy. Past
        the wait: ``StoreBusy`` naming the file and the process holding it. Any other failure
        to open (not a DuckDB file, a damaged one) is a ``StateError`` naming the file."""
        wait_s = (READ_WAIT_S if read_only else WRITE_WAIT_S) if wait_s is None else wait_s
        deadline, delay, told = time.monotonic() + wait_s, 0.02, False
        while True:
            try:
                return cls(path, read_only=read_only)
            except duckdb.IOException as error:
                holder = _lock_holder(str(error))
                if holder is None:
                    raise StateError(f"{path}: cannot open the results store: {error}") from None
                if time.monotonic() >= deadline:
                    raise StoreBusy(
                        f"{path} is busy: {holder} has held it for more than {wait_s:g} s; try again in a moment"
                    ) from None
                if on_wait is not None and not told:
                    on_wait(holder)
                    told = True
                time.sleep(max(0.0, min(delay, deadline - time.monotonic())))
                delay = min(delay * 2, 0.5)
            except duckdb.Error as error:
                raise StateError(f"{path}: cannot open the results store: {error}") from None

    @classmethod
    def in_run_dir(cls, run_dir: Path, read_only: bool = False, wait_s: float | None = None) -> ResultsStore:
        path = Path(run_dir) / STORE_FILE
        if read_only and not path.is_file():
            raise StateError(f"{path}: no results store here (run `objlab run` first)")
        return cls.open(path, read_only=read_only, wait_s=wait_s)

    def _has_column(self, table: str, column: str) -> bool:
        query = "SELECT count(*) FROM information_schema.columns WHERE table_name = ? AND column_name = ?"
        return self.db.execute(query, [table, column]).fetchone()[0] > 0

    def _has_table(self, name: str) -> bool:
        query = "SELECT count(*) FROM information_schema.tables WHERE table_name = ?"
        return self.db.execute(query, [name]).fetchone()[0] > 0

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def transaction(self):
        self.db.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- meta --------------------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [key, value])

    def _set_default(self, key: str, value: str) -> None:
        if self.meta(key) is None:
            self.set_meta(key, value)

    # -- cells -------------------------------------------------------------------------------
    def finished_cells(self) -> set[str]:
        return {row[0] for row in self.db.execute("SELECT cell_id FROM cells").fetchall()}

    def record_cell(
        self,
        cell_id: str,
        *,
        kind: str,
        metrics: list[MetricRow],
        items: list[ItemRecord],
        eval_info: EvalInfo | None,
        train_manifest: AdapterManifest | None = None,
        log_rows: list[StepLog] = (),
        objective: str | None = None,
        seed: int | None = None,
        budget: int | None = None,
        adapter_dir: str | None = None,
        train_seconds: float | None = None,
        eval_seconds: float | None = None,
        model: str | None = None,
    ) -> None:
        """Store everything of one cell atomically; the ``cells`` row marks it finished."""
        train, evaluation = train_manifest, eval_info
        with self.transaction():
            for table in ("metrics", "items", "train_log", "cells"):
                self.db.execute(f"DELETE FROM {table} WHERE cell_id = ?", [cell_id])
            self._insert_metrics(cell_id, metrics)
            if items:
                self.db.executemany(
                    "INSERT INTO items VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        [cell_id, i.axis, i.group, i.item_id, i.prompt, i.output, _finite(i.score), i.verdict, i.scorer, _json(i.extra)]
                        for i in items
                    ],
                )
            if log_rows:
                self.db.executemany(
                    "INSERT INTO train_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        [cell_id, *(getattr(row, k) for k in _LOG_FIELDS), _json({**row.components, **({"evidence": row.evidence} if row.evidence else {})})]
                        for row in log_rows
                    ],
                )
            self.db.execute(
                "INSERT INTO cells VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    cell_id, kind, objective, seed, budget, train and train.mode, adapter_dir,
                    train and train.budget_tokens, train and train.compute_tokens,
                    train_seconds, eval_seconds, (evaluation and evaluation.device) or (train and train.device),
                    _json(train and adapter_manifest_json(train)), _json(evaluation and eval_info_json(evaluation)),
                    datetime.now(UTC).replace(tzinfo=None), model,
                ],
            )
            fault_point("store.cell.before_commit")
        fault_point("store.cell.committed")

    def _insert_metrics(self, cell_id: str, metrics: list[MetricRow]) -> None:
        if metrics:
            self.db.executemany(
                "INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    [cell_id, m.axis, m.metric, m.group, _finite(m.value), m.n, _finite(m.ci_low), _finite(m.ci_high),
                     m.method, m.status, m.note, _finite(m.p_value), m.comparison]
                    for m in metrics
                ],
            )

    def replace_comparisons(self, cell_id: str, rows: list[MetricRow]) -> None:
        """Replace a cell's comparison rows (paired tests against the base model)."""
        with self.transaction():
            self.db.execute("DELETE FROM metrics WHERE cell_id = ? AND comparison IS NOT NULL", [cell_id])
            self._insert_metrics(cell_id, rows)

    # -- failures ----------------------------------------------------------------------------
    def record_failure(self, failure: CellFailure) -> None:
        """Store one failed attempt at a cell (the cell stays unfinished: a re-run retries it)."""
        self.db.execute(
            f"INSERT INTO failures ({_FAILURE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [failure.cell_id, failure.unit, failure.phase, failure.error_type, failure.message, failure.traceback, failure.failed_at],
        )

    def failures(self, open_only: bool = False) -> list[CellFailure]:
        """Every recorded failure, oldest first; ``open_only``: the latest failure of each cell
        that has not finished since (the cells a re-run will retry)."""
        if not self._has_table("failures"):
            return []
        query = f"SELECT {_FAILURE_COLUMNS} FROM failures ORDER BY failed_at, rowid"
        if open_only:
            query = (
                f"SELECT {_FAILURE_COLUMNS} FROM (SELECT *, row_number() OVER (PARTITION BY cell_id ORDER BY failed_at DESC, rowid DESC) AS r "
                "FROM failures) WHERE r = 1 AND cell_id NOT IN (SELECT cell_id FROM cells) ORDER BY failed_at, cell_id"
            )
        return [CellFailure(*row) for row in self.db.execute(query).fetchall()]

    # -- reading -----------------------------------------------------------------------------
    def frame(self, sql: str, params: list | None = None):
        """A query's result as a pandas DataFrame (for the report and exports)."""
        return self.db.execute(sql, params or []).df()

    def cell_items(self, cell_id: str) -> list[ItemRecord]:
        rows = self.db.execute(
            'SELECT axis, "group", item_id, prompt, output, score, verdict, scorer, extra FROM items WHERE cell_id = ? ORDER BY rowid',
            [cell_id],
        ).fetchall()
        return [
            ItemRecord(a, g, i, p, o, math.nan if s is None else s, v or "", sc or "", json.loads(e) if e else {})
            for a, g, i, p, o, s, v, sc, e in rows
        ]

    def cell_metrics(self, cell_id: str) -> list[MetricRow]:
        rows = self.db.execute(
            'SELECT axis, metric, "group", value, n, ci_low, ci_high, method, status, note, p_value, comparison '
            "FROM metrics WHERE cell_id = ? ORDER BY rowid",
            [cell_id],
        ).fetchall()
        nan = lambda v: math.nan if v is None else v  # noqa: E731
        return [MetricRow(a, m, g, nan(v), n, nan(lo), nan(hi), me, st, no, p, c) for a, m, g, v, n, lo, hi, me, st, no, p, c in rows]

    def export(self, directory: Path, fmt: str = "csv") -> list[Path]:
        """Write every table to ``directory`` as CSV or Parquet; returns the files written."""
        if fmt not in ("csv", "parquet"):
            raise ValueError(f"export format must be csv or parquet, got {fmt!r}")
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for table in ("cells", "metrics", "items", "train_log"):
            target = directory / f"{table}.{fmt}"
            option = "(HEADER, DELIMITER ',')" if fmt == "csv" else "(FORMAT PARQUET)"
            self.db.execute(f"COPY {table} TO '{target}' {option}")
            written.append(target)
        return written

    # -- verdict cache (objlab.scoring.cache.VerdictCache) ------------------------------------
    def get_many(self, keys: list[str]) -> dict[str, dict]:
        if not keys:
            return {}
        with self._lock:
            query = "SELECT key, verdict FROM verdicts WHERE key IN (SELECT unnest(?))"
            rows = self.db.execute(query, [list(keys)]).fetchall()
        return {key: json.loads(verdict) for key, verdict in rows}

    def put_many(self, verdicts: dict[str, dict]) -> None:
        if verdicts:
            now = datetime.now(UTC).replace(tzinfo=None)
            with self._lock:
                self.db.executemany(
                    "INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?)", [[k, _json(v), now] for k, v in verdicts.items()]
                )

    def all_verdicts(self) -> dict[str, dict]:
        """Every cached verdict (to seed a cache that lives outside this process)."""
        with self._lock:
            rows = self.db.execute("SELECT key, verdict FROM verdicts").fetchall()
        return {key: json.loads(verdict) for key, verdict in rows}

    def verdict_count(self) -> int:
        return self.db.execute("SELECT count(*) FROM verdicts").fetchone()[0]

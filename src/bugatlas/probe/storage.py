"""Probe results in the study store (tables of migration 0800_probe)."""

from __future__ import annotations

from typing import Any

import orjson
import pandas as pd

from bugatlas.store import Store

FINDING_COLUMNS = [
    "probe_run_id", "started_at", "base_url", "model", "engine", "suite", "taxonomy", "check_id",
    "oracle", "title", "failure_kind", "symptom", "unexpected_output", "message", "evidence",
]  # fmt: skip


def save_probe_report(store: Store, report: Any, *, run_id: int | None = None) -> int:
    """Store a :class:`~bugatlas.probe.runner.ProbeReport`: one probe_runs row and one
    probe_findings row per failed check. Returns the probe run id."""
    c = report.counts()
    results = [r.__dict__ for r in report.results]
    with store.transaction() as conn:
        cur = conn.execute(
            """INSERT INTO probe_runs (run_id, base_url, model, engine, suite, taxonomy, started_at,
                 finished_at, duration_s, requests, passed, failed, skipped, errored, server, results)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (run_id, report.base_url, report.model, report.server.get("engine"), report.suite,
             report.taxonomy, report.started_at, report.finished_at, report.duration_s, report.requests,
             c["pass"], c["fail"], c["skip"], c["error"], orjson.dumps(report.server).decode(),
             orjson.dumps(results, option=orjson.OPT_NON_STR_KEYS).decode()),
        )  # fmt: skip
        probe_run_id = int(cur.lastrowid)
        conn.executemany(
            """INSERT INTO probe_findings (probe_run_id, check_id, oracle, title, failure_kind, symptom,
                 unexpected_output, message, evidence, duration_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [(probe_run_id, r.id, r.oracle, r.title, r.kind, r.symptom, r.unexpected_output, r.message,
              orjson.dumps(r.evidence, option=orjson.OPT_NON_STR_KEYS).decode(), r.duration_s)
             for r in report.failures()],
        )  # fmt: skip
    return probe_run_id


def probe_runs_frame(store: Store) -> pd.DataFrame:
    """One row per stored probe run, newest last."""
    return pd.read_sql_query(
        "SELECT id AS probe_run_id, run_id, base_url, model, engine, suite, taxonomy, started_at, "
        "finished_at, duration_s, requests, passed, failed, skipped, errored FROM probe_runs ORDER BY id",
        store.conn,
    )


def probe_findings_frame(store: Store, *, latest_only: bool = False) -> pd.DataFrame:
    """Failures found by probe runs, one row each, classified in liu2025 (``symptom``,
    ``unexpected_output``), with the run's server and model, ready to set beside the symptom
    distribution of mined issues. ``latest_only`` keeps the newest run per (base_url, model)."""
    sql = (
        "SELECT f.probe_run_id, r.started_at, r.base_url, r.model, r.engine, r.suite, r.taxonomy, "
        "f.check_id, f.oracle, f.title, f.failure_kind, f.symptom, f.unexpected_output, f.message, "
        "f.evidence FROM probe_findings f JOIN probe_runs r ON r.id = f.probe_run_id"
    )
    if latest_only:
        sql += (" WHERE r.id IN (SELECT MAX(id) FROM probe_runs GROUP BY base_url, COALESCE(model, ''))")
    sql += " ORDER BY f.probe_run_id, f.id"
    df = pd.read_sql_query(sql, store.conn)
    df["evidence"] = [orjson.loads(e) if e else {} for e in df["evidence"]]
    df = df[FINDING_COLUMNS].copy()
    for col in ("model", "engine", "failure_kind", "unexpected_output", "title"):
        df[col] = df[col].astype(object).where(df[col].notna(), None)  # NULL stays None, not NaN
    return df


def probe_run_results(store: Store, probe_run_id: int) -> list[dict[str, Any]]:
    """Every check's result (passes and skips included) of one stored run."""
    row = store.conn.execute("SELECT results FROM probe_runs WHERE id = ?", (probe_run_id,)).fetchone()
    return orjson.loads(row[0]) if row and row[0] else []

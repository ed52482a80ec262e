-- Probe stage: runs of `bugatlas probe` against a live server, and the failures they found,
-- classified in the liu2025 taxonomy so the report can set them beside mined issues.
CREATE TABLE probe_runs (
    id           INTEGER PRIMARY KEY,
    run_id       INTEGER REFERENCES runs (id),    -- provenance row of the command
    base_url     TEXT NOT NULL,
    model        TEXT,
    engine       TEXT,                            -- best guess from the server's own endpoints
    suite        TEXT NOT NULL,
    taxonomy     TEXT NOT NULL DEFAULT 'liu2025',
    started_at   TEXT NOT NULL,
    finished_at  TEXT,
    duration_s   REAL,
    requests     INTEGER,
    passed       INTEGER NOT NULL DEFAULT 0,
    failed       INTEGER NOT NULL DEFAULT 0,
    skipped      INTEGER NOT NULL DEFAULT 0,
    errored      INTEGER NOT NULL DEFAULT 0,
    server       TEXT,                            -- JSON: what the server said about itself
    results      TEXT                             -- JSON: every check's result, passes included
);

CREATE TABLE probe_findings (
    id                 INTEGER PRIMARY KEY,
    probe_run_id       INTEGER NOT NULL REFERENCES probe_runs (id) ON DELETE CASCADE,
    check_id           TEXT NOT NULL,
    oracle             TEXT NOT NULL,
    title              TEXT,
    failure_kind       TEXT,                      -- assertion | timeout | server_error | ...
    symptom            TEXT NOT NULL,             -- liu2025 symptom name
    unexpected_output  TEXT,                      -- liu2025 sub-type when symptom is Unexpected Output
    message            TEXT NOT NULL,
    evidence           TEXT,                      -- JSON
    duration_s         REAL,
    UNIQUE (probe_run_id, check_id)
);
CREATE INDEX probe_findings_symptom ON probe_findings (symptom);

-- Core tables every stage shares. Times are ISO-8601 UTC strings; JSON columns hold orjson text.
CREATE TABLE repositories (
    full_name   TEXT PRIMARY KEY,          -- "owner/name", lower-case as GitHub resolves it
    owner       TEXT NOT NULL,
    name        TEXT NOT NULL,
    display     TEXT,                      -- engine or model-series name used by a study ("vLLM")
    kind        TEXT,                      -- engine | model | other
    extra       TEXT                       -- JSON
);

CREATE TABLE issues (
    repo                TEXT NOT NULL,
    number              INTEGER NOT NULL,
    title               TEXT,
    body                TEXT,
    state               TEXT,
    labels              TEXT NOT NULL DEFAULT '[]',   -- JSON list of maintainers' label names
    author              TEXT,
    author_association  TEXT,
    created_at          TEXT,
    updated_at          TEXT,
    closed_at           TEXT,
    comments_count      INTEGER,
    reactions           TEXT,                          -- JSON object
    is_pull_request     INTEGER NOT NULL DEFAULT 0,
    html_url            TEXT,
    is_reference        INTEGER NOT NULL DEFAULT 0,    -- 1: known only by link (labels, no text yet)
    source              TEXT,                          -- importer or collector that wrote the row
    -- The record as received, as JSON, less the title and body that the columns above hold
    -- verbatim (Store merges them back): keeping every field without storing the text twice.
    raw                 TEXT,
    UNIQUE (repo, number)
);
CREATE INDEX issues_created ON issues (created_at);

CREATE TABLE comments (
    repo                TEXT NOT NULL,
    issue_number        INTEGER NOT NULL,
    comment_id          INTEGER NOT NULL,
    author              TEXT,
    author_association  TEXT,
    body                TEXT,
    created_at          TEXT,
    updated_at          TEXT,
    raw                 TEXT,
    PRIMARY KEY (repo, issue_number, comment_id)
) WITHOUT ROWID;

CREATE TABLE pull_requests (
    repo            TEXT NOT NULL,
    number          INTEGER NOT NULL,
    title           TEXT,
    state           TEXT,
    merged_at       TEXT,
    additions       INTEGER,
    deletions       INTEGER,
    changed_files   INTEGER,
    html_url        TEXT,
    raw             TEXT,
    PRIMARY KEY (repo, number)
) WITHOUT ROWID;

-- Which pull request fixed (or referenced) which issue.
CREATE TABLE issue_fixes (
    repo            TEXT NOT NULL,
    issue_number    INTEGER NOT NULL,
    pr_repo         TEXT NOT NULL,
    pr_number       INTEGER NOT NULL,
    relation        TEXT NOT NULL,     -- closes | cross-reference
    PRIMARY KEY (repo, issue_number, pr_repo, pr_number)
) WITHOUT ROWID;

-- A label on an issue in some taxonomy, from some source.
--   source_kind: human | rule | model | llm   (imported datasets are human labels)
--   source:      annotator id, classifier name, or "dataset:<name>" for imports
--   record:      for imported datasets, the id of the published record (one issue may have several)
CREATE TABLE labels (
    id            INTEGER PRIMARY KEY,
    repo          TEXT NOT NULL,
    issue_number  INTEGER NOT NULL,
    taxonomy      TEXT NOT NULL,
    dimension     TEXT NOT NULL,
    value         TEXT NOT NULL,
    source_kind   TEXT NOT NULL,
    source        TEXT NOT NULL,
    record        TEXT NOT NULL DEFAULT '',
    confidence    REAL,
    evidence      TEXT,                 -- JSON list of the lines/phrases that decided it
    run_id        INTEGER,
    created_at    TEXT NOT NULL,
    UNIQUE (repo, issue_number, taxonomy, dimension, value, source_kind, source, record)
);
CREATE INDEX labels_taxonomy ON labels (taxonomy, dimension, source_kind);
CREATE INDEX labels_issue ON labels (repo, issue_number);

-- Provenance: which command produced what, with which versions and parameters.
CREATE TABLE runs (
    id           INTEGER PRIMARY KEY,
    command      TEXT NOT NULL,
    params       TEXT,
    version      TEXT,
    started_at   TEXT NOT NULL,
    finished_at  TEXT,
    status       TEXT NOT NULL DEFAULT 'running',   -- running | ok | failed
    summary      TEXT
);

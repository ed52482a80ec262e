-- Classification stage (bugatlas.classify).
-- Models fitted by `bugatlas train` (pickled scikit-learn objects; the newest per taxonomy is used).
CREATE TABLE classify_models (
    id          INTEGER PRIMARY KEY,
    taxonomy    TEXT NOT NULL,
    version     TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    n_human     INTEGER NOT NULL,
    n_weak      INTEGER NOT NULL,
    params      TEXT,                 -- JSON
    run_id      INTEGER,
    blob        BLOB NOT NULL
);
CREATE INDEX classify_models_taxonomy ON classify_models (taxonomy, id);

-- Which issue a classifier version has labeled (also when it abstained on every dimension),
-- so an interrupted or repeated `classify` run resumes instead of starting over.
CREATE TABLE classify_done (
    taxonomy    TEXT NOT NULL,
    source      TEXT NOT NULL,
    repo        TEXT NOT NULL,
    number      INTEGER NOT NULL,
    version     TEXT NOT NULL,
    run_id      INTEGER,
    labeled_at  TEXT NOT NULL,
    PRIMARY KEY (taxonomy, source, repo, number)
) WITHOUT ROWID;

-- Answers of LLM endpoints, keyed by a hash of (endpoint model, request body): a repeated
-- prompt costs nothing and a re-run is reproducible.
CREATE TABLE classify_llm_cache (
    key         TEXT PRIMARY KEY,
    model       TEXT NOT NULL,
    response    TEXT NOT NULL,        -- the validated JSON answer
    created_at  TEXT NOT NULL
) WITHOUT ROWID;

-- Diagnose stage: the search index over issues (lexical FTS5, exact signatures, LSA vectors).
-- One row per indexed issue; content_hash makes `bugatlas index build` incremental.
CREATE TABLE diagnose_docs (
    doc_id          INTEGER PRIMARY KEY,           -- also the rowid in diagnose_fts
    repo            TEXT NOT NULL,
    number          INTEGER NOT NULL,
    content_hash    TEXT NOT NULL,                 -- sha1 of title and body when indexed
    has_log         INTEGER NOT NULL,
    recognized      INTEGER NOT NULL,              -- a failure signature was parsed
    family          TEXT,
    exception_type  TEXT,
    signature       TEXT,
    signature_key   TEXT,
    engine          TEXT,
    component       TEXT,
    versions        TEXT,                          -- JSON
    search_terms    TEXT,                          -- signature, exception chain, frame names
    vector          BLOB,                          -- float32 LSA vector (NULL until vectorized)
    model_version   INTEGER,                       -- which LSA model made `vector`
    indexed_at      TEXT NOT NULL,
    UNIQUE (repo, number)
);
CREATE INDEX diagnose_docs_signature ON diagnose_docs (signature_key);

-- Every signature found in an issue (the primary one and secondary ones).
CREATE TABLE diagnose_signatures (
    signature_key   TEXT NOT NULL,
    doc_id          INTEGER NOT NULL,
    is_primary      INTEGER NOT NULL,
    PRIMARY KEY (signature_key, doc_id)
) WITHOUT ROWID;

CREATE VIRTUAL TABLE diagnose_fts USING fts5(
    title, body, signature,
    tokenize = "unicode61 remove_diacritics 2 tokenchars '_'"
);

-- The LSA model (vocabulary, idf, components as an .npz blob) and index bookkeeping.
CREATE TABLE diagnose_model (
    version         INTEGER PRIMARY KEY,
    fitted_at       TEXT NOT NULL,
    n_docs          INTEGER NOT NULL,               -- documents in the index when fitted
    n_sample        INTEGER NOT NULL,               -- documents the model was fitted on
    data            BLOB NOT NULL
);

CREATE TABLE diagnose_meta (
    key             TEXT PRIMARY KEY,
    value           TEXT
);

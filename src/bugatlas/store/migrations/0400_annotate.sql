-- Human annotation (stage annotate): samples, assignments, append-only annotations, roles,
-- arbitration and final (gold) labels. Nothing here is ever updated in place except the
-- sample's settings: every save is a new row, so concurrent work is never lost and the full
-- history stays auditable. The latest row per (item, annotator) is the one agreement uses.

-- A statistically sized, stratified random sample drawn for one taxonomy.
CREATE TABLE ann_samples (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    taxonomy    TEXT NOT NULL,
    dimensions  TEXT NOT NULL,            -- JSON list of the codebook dimensions annotated
    strata_by   TEXT NOT NULL,            -- "repo", an issues column, or "year"
    confidence  REAL,
    margin      REAL,
    seed        INTEGER NOT NULL,
    params      TEXT NOT NULL,            -- JSON: every option the sample was drawn with
    settings    TEXT NOT NULL DEFAULT '{}', -- JSON: study-owner switches (show_suggestions, …)
    run_id      INTEGER,
    created_at  TEXT NOT NULL
);

-- Per stratum: population size N and sample size n (Cochran with finite population correction).
CREATE TABLE ann_strata (
    sample_id   INTEGER NOT NULL REFERENCES ann_samples(id) ON DELETE CASCADE,
    stratum     TEXT NOT NULL,
    population  INTEGER NOT NULL,
    size        INTEGER NOT NULL,
    PRIMARY KEY (sample_id, stratum)
);

CREATE TABLE ann_items (
    id            INTEGER PRIMARY KEY,
    sample_id     INTEGER NOT NULL REFERENCES ann_samples(id) ON DELETE CASCADE,
    repo          TEXT NOT NULL,
    issue_number  INTEGER NOT NULL,
    stratum       TEXT NOT NULL,
    position      INTEGER NOT NULL,       -- order drawn (seeded shuffle)
    UNIQUE (sample_id, repo, issue_number)
);

-- Who does what in a sample: annotator | arbitrator | owner. Owners and arbitrators see
-- everyone's labels, so a name may not be both an annotator and one of those (blindness).
CREATE TABLE ann_roles (
    sample_id   INTEGER NOT NULL REFERENCES ann_samples(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    PRIMARY KEY (sample_id, name, role)
);

CREATE TABLE ann_assignments (
    id          INTEGER PRIMARY KEY,
    item_id     INTEGER NOT NULL REFERENCES ann_items(id) ON DELETE CASCADE,
    annotator   TEXT NOT NULL,
    round       TEXT NOT NULL DEFAULT 'main',   -- pilot | main
    position    INTEGER NOT NULL,               -- order in the annotator's queue
    created_at  TEXT NOT NULL,
    UNIQUE (item_id, annotator)
);
CREATE INDEX ann_assignments_annotator ON ann_assignments (annotator);

-- Every save of an annotator's labels for one item (append-only history).
--   labels: JSON {dimension: [category names]}; status: draft | done
CREATE TABLE ann_annotations (
    id             INTEGER PRIMARY KEY,
    assignment_id  INTEGER NOT NULL REFERENCES ann_assignments(id) ON DELETE CASCADE,
    labels         TEXT NOT NULL,
    note           TEXT NOT NULL DEFAULT '',
    unsure         INTEGER NOT NULL DEFAULT 0,
    status         TEXT NOT NULL DEFAULT 'draft',
    source         TEXT NOT NULL DEFAULT 'app',    -- app | label-studio | api
    client         TEXT,                           -- browser tab / import id that wrote it
    created_at     TEXT NOT NULL
);
CREATE INDEX ann_annotations_assignment ON ann_annotations (assignment_id, id);

-- Final labels per item and dimension (append-only; the latest row wins).
--   method: agreed (all annotators gave the same labels) | arbitrated
CREATE TABLE ann_final (
    id          INTEGER PRIMARY KEY,
    item_id     INTEGER NOT NULL REFERENCES ann_items(id) ON DELETE CASCADE,
    dimension   TEXT NOT NULL,
    labels      TEXT NOT NULL,            -- JSON list of category names
    method      TEXT NOT NULL,
    arbitrator  TEXT,
    note        TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL
);
CREATE INDEX ann_final_item ON ann_final (item_id, dimension, id);

-- Small key/value state of the annotation server (e.g. its session-signing secret, so that
-- sign-ins survive a restart).
CREATE TABLE ann_state (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);

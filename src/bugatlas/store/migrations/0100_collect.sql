-- Collect stage: crawl progress and the raw-response archive.

-- One row per crawl (a repository under one set of filters). `cursor` is the GraphQL
-- position after the last page whose data is committed (same transaction as that data), so
-- a crawl killed at any point resumes exactly there. `watermark` is the newest updatedAt
-- stored by this crawl: the next run starts from it (incremental).
CREATE TABLE collect_state (
    repo          TEXT NOT NULL,
    filter_key    TEXT NOT NULL,            -- JSON {state, labels, since}
    cursor        TEXT,                     -- NULL: no crawl in progress
    cursor_since  TEXT,                     -- the `since` the in-progress crawl started with
    watermark     TEXT,                     -- newest updatedAt stored (ISO-8601 UTC)
    issues        INTEGER NOT NULL DEFAULT 0,
    requests      INTEGER NOT NULL DEFAULT 0,
    updated_at    TEXT,
    PRIMARY KEY (repo, filter_key)
) WITHOUT ROWID;

-- Every raw response of an --archive crawl, in the order it was applied. `request` holds the
-- query and variables (never headers: no token reaches this table); `context` what the
-- collector needs to apply the response again offline (--replay).
CREATE TABLE collect_archive (
    id           INTEGER PRIMARY KEY,
    run_id       INTEGER,
    grp          INTEGER,                   -- id of the row that opened this response's group
    repo         TEXT NOT NULL,
    kind         TEXT NOT NULL,             -- issues | comments | hydrate | fault
    context      TEXT,                      -- JSON
    method       TEXT NOT NULL,
    url          TEXT NOT NULL,             -- path below the base URL, e.g. /graphql
    request      TEXT,                      -- JSON body sent
    status       INTEGER NOT NULL,
    response     TEXT NOT NULL,             -- JSON body received
    received_at  TEXT NOT NULL
);
CREATE INDEX collect_archive_repo ON collect_archive (repo, id);

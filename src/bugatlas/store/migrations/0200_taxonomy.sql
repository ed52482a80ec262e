-- Filter stage (bugatlas filter): the kind of every issue and whether the study's rules take it.
-- One row per issue, rewritten by each filter run (the run id says which).
CREATE TABLE issue_kinds (
    repo             TEXT NOT NULL,
    number           INTEGER NOT NULL,
    kind             TEXT NOT NULL,          -- failure | feature | question | documentation | other
    confidence       REAL,                   -- probability of `kind` (stage 2 classifier)
    probabilities    TEXT,                   -- JSON {kind: probability}
    rule_pass        INTEGER,                -- stage 1: 1 the study's rules take it, 0 they do not
    rule_evidence    TEXT,                   -- JSON {"keywords": [...], "reasons": [...]}
    rules            TEXT,                   -- name of the rules file used
    maintainer_kind  TEXT,                   -- what the maintainers' labels say (for evaluation only)
    model            TEXT,                   -- which classifier produced `kind`
    run_id           INTEGER,
    created_at       TEXT NOT NULL,
    PRIMARY KEY (repo, number)
) WITHOUT ROWID;
CREATE INDEX issue_kinds_kind ON issue_kinds (kind);

-- The issues later stages study: judged failure reports that the study's rules take.
CREATE VIEW failure_reports AS
SELECT i.*, k.confidence AS kind_confidence, k.rule_evidence AS rule_evidence, k.run_id AS filter_run_id
  FROM issues AS i
  JOIN issue_kinds AS k ON k.repo = i.repo AND k.number = i.number
 WHERE k.kind = 'failure' AND COALESCE(k.rule_pass, 1) = 1;

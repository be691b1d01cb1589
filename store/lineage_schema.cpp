#include "store/internal/lineage_schema.h"

namespace baton::store {

// Conventions: JSON is stored as TEXT (canonical), times as REAL seconds since
// the Unix epoch (0 = not yet), digests as lower-case hex TEXT. A stage id of 0
// in the API is NULL here, so that foreign keys hold.
const std::vector<const char*>& LineageMigrations() {
  static const std::vector<const char*> kMigrations = {
      // 1: the initial schema.
      R"sql(
CREATE TABLE pipelines (
  id         TEXT PRIMARY KEY,
  name       TEXT NOT NULL,
  spec       TEXT NOT NULL,
  created_at REAL NOT NULL
);

CREATE TABLE runs (
  id          TEXT PRIMARY KEY,
  pipeline_id TEXT NOT NULL,
  name        TEXT NOT NULL,
  status      TEXT NOT NULL,
  created_at  REAL NOT NULL,
  finished_at REAL NOT NULL DEFAULT 0,
  error       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX runs_by_created ON runs (created_at);
CREATE INDEX runs_by_pipeline ON runs (pipeline_id);

CREATE TABLE stages (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id      TEXT NOT NULL REFERENCES runs (id),
  name        TEXT NOT NULL,
  type        TEXT NOT NULL,
  status      TEXT NOT NULL,
  cache_key   TEXT NOT NULL DEFAULT '',
  cached_from INTEGER NOT NULL DEFAULT 0,
  output      TEXT NOT NULL DEFAULT '',
  spec        TEXT NOT NULL DEFAULT '{}',
  resolved    TEXT NOT NULL DEFAULT '{}',
  started_at  REAL NOT NULL DEFAULT 0,
  finished_at REAL NOT NULL DEFAULT 0,
  error       TEXT NOT NULL DEFAULT '',
  UNIQUE (run_id, name)
);
CREATE INDEX stages_by_cache_key ON stages (cache_key, status, cached_from);

CREATE TABLE trials (
  id                 INTEGER PRIMARY KEY AUTOINCREMENT,
  stage_id           INTEGER NOT NULL REFERENCES stages (id),
  number             INTEGER NOT NULL,
  kind               TEXT NOT NULL,
  hyperparameters    TEXT NOT NULL DEFAULT '{}',
  task               TEXT NOT NULL DEFAULT '{}',
  seed               INTEGER NOT NULL DEFAULT 0,
  status             TEXT NOT NULL,
  attempts           INTEGER NOT NULL DEFAULT 0,
  reason             TEXT NOT NULL DEFAULT '',
  initial_checkpoint TEXT NOT NULL DEFAULT '',
  output             TEXT NOT NULL DEFAULT '',
  started_at         REAL NOT NULL DEFAULT 0,
  finished_at        REAL NOT NULL DEFAULT 0,
  UNIQUE (stage_id, number)
);

-- A checkpoint's first recording; checkpoint_records lists every one (the
-- same weights may be a trial's last epoch and another trial's start).
CREATE TABLE checkpoints (
  digest     TEXT PRIMARY KEY,
  trial_id   INTEGER NOT NULL REFERENCES trials (id),
  epoch      INTEGER NOT NULL,
  created_at REAL NOT NULL
);
CREATE INDEX checkpoints_by_trial ON checkpoints (trial_id);

CREATE TABLE checkpoint_records (
  digest   TEXT NOT NULL REFERENCES checkpoints (digest),
  trial_id INTEGER NOT NULL REFERENCES trials (id),
  epoch    INTEGER NOT NULL,
  PRIMARY KEY (digest, trial_id, epoch)
) WITHOUT ROWID;
CREATE INDEX checkpoint_records_by_trial ON checkpoint_records (trial_id);

CREATE TABLE epochs (
  trial_id   INTEGER NOT NULL REFERENCES trials (id),
  epoch      INTEGER NOT NULL,
  metrics    TEXT NOT NULL,
  checkpoint TEXT NOT NULL REFERENCES checkpoints (digest),
  seconds    REAL NOT NULL DEFAULT 0,
  created_at REAL NOT NULL,
  PRIMARY KEY (trial_id, epoch)
) WITHOUT ROWID;
CREATE INDEX epochs_by_checkpoint ON epochs (checkpoint);

-- Byte accounting: every blob once, with the stage that first recorded it.
CREATE TABLE blobs (
  digest         TEXT PRIMARY KEY,
  size           INTEGER NOT NULL,
  first_stage_id INTEGER REFERENCES stages (id),
  created_at     REAL NOT NULL
);
CREATE INDEX blobs_by_first_stage ON blobs (first_stage_id);

CREATE TABLE checkpoint_blobs (
  checkpoint TEXT NOT NULL REFERENCES checkpoints (digest),
  blob       TEXT NOT NULL REFERENCES blobs (digest),
  PRIMARY KEY (checkpoint, blob)
) WITHOUT ROWID;
CREATE INDEX checkpoint_blobs_by_blob ON checkpoint_blobs (blob);

CREATE TABLE artifacts (
  digest     TEXT PRIMARY KEY,
  kind       TEXT NOT NULL,
  stage_id   INTEGER REFERENCES stages (id),
  meta       TEXT NOT NULL,
  created_at REAL NOT NULL
);
CREATE INDEX artifacts_by_stage ON artifacts (stage_id);

CREATE TABLE artifact_blobs (
  artifact TEXT NOT NULL REFERENCES artifacts (digest),
  blob     TEXT NOT NULL REFERENCES blobs (digest),
  PRIMARY KEY (artifact, blob)
) WITHOUT ROWID;
CREATE INDEX artifact_blobs_by_blob ON artifact_blobs (blob);

-- Lineage graph; rowid keeps insertion order for stable traversals.
CREATE TABLE edges (
  src        TEXT NOT NULL,
  dst        TEXT NOT NULL,
  kind       TEXT NOT NULL,
  attrs      TEXT NOT NULL DEFAULT '{}',
  created_at REAL NOT NULL,
  UNIQUE (src, dst, kind)
);
CREATE INDEX edges_by_dst ON edges (dst);
)sql",
      // 2: retention. A checkpoint that `store gc` released keeps its rows
      // (history) with the time it was released; pinned runs keep every
      // checkpoint.
      R"sql(
ALTER TABLE checkpoints ADD COLUMN released_at REAL NOT NULL DEFAULT 0;

CREATE TABLE pins (
  run_id     TEXT PRIMARY KEY REFERENCES runs (id),
  created_at REAL NOT NULL
);
)sql",
      // 3: Idempotency-Keys of runs triggered over HTTP, kept with the run
      // they created so that a retry after a server restart finds it.
      R"sql(
CREATE TABLE idempotency_keys (
  key         TEXT PRIMARY KEY,
  pipeline_id TEXT NOT NULL,
  run_id      TEXT NOT NULL REFERENCES runs (id),
  created_at  REAL NOT NULL
) WITHOUT ROWID;
)sql",
      // 4: where each attempt of a trial ran: a JSON array with one object
      // per attempt (attempt, worker, executor, and e.g. the Slurm job id).
      R"sql(
ALTER TABLE trials ADD COLUMN placements TEXT NOT NULL DEFAULT '[]';
)sql",
  };
  return kMigrations;
}

namespace lineage_rows {

const char* const kRunCols =
    "id, pipeline_id, name, status, created_at, finished_at, error";
const char* const kStageCols =
    "id, run_id, name, type, status, cache_key, cached_from, output, spec, "
    "resolved, started_at, finished_at, error";
const char* const kTrialCols =
    "id, stage_id, number, kind, hyperparameters, task, seed, status, "
    "attempts, reason, initial_checkpoint, output, started_at, finished_at, placements";

RunRecord ReadRun(const sql::Statement& s) {
  return RunRecord{s.ColText(0), s.ColText(1), s.ColText(2), s.ColText(3),
                   s.ColReal(4), s.ColReal(5), s.ColText(6)};
}

StageRecord ReadStage(const sql::Statement& s) {
  StageRecord r;
  r.id = s.ColInt(0);
  r.run_id = s.ColText(1);
  r.name = s.ColText(2);
  r.type = s.ColText(3);
  r.status = s.ColText(4);
  r.cache_key = s.ColText(5);
  r.cached_from = s.ColInt(6);
  r.output = s.ColText(7);
  r.spec = s.ColJson(8);
  r.resolved = s.ColJson(9);
  r.started_at = s.ColReal(10);
  r.finished_at = s.ColReal(11);
  r.error = s.ColText(12);
  return r;
}

TrialRecord ReadTrial(const sql::Statement& s) {
  TrialRecord r;
  r.id = s.ColInt(0);
  r.stage_id = s.ColInt(1);
  r.number = static_cast<int>(s.ColInt(2));
  r.kind = s.ColText(3);
  r.hyperparameters = s.ColJson(4);
  r.task = s.ColJson(5);
  r.seed = s.ColInt(6);
  r.status = s.ColText(7);
  r.attempts = static_cast<int>(s.ColInt(8));
  r.reason = s.ColText(9);
  r.initial_checkpoint = s.ColText(10);
  r.output = s.ColText(11);
  r.started_at = s.ColReal(12);
  r.finished_at = s.ColReal(13);
  r.placements = s.ColJson(14);
  return r;
}

}  // namespace lineage_rows

}  // namespace baton::store

// The SqliteLineageDb members for what trials and stages produce: epochs,
// checkpoints and the accounting of their blobs, artifacts, lineage edges
// and their traversal, and the blob look-ups of gc and fsck.
#include "store/internal/sqlite_lineage_db.h"

#include <mutex>
#include <set>

#include "common/digest.h"
#include "common/error.h"

namespace baton::store::detail {
namespace {

void RequireDigest(const std::string& digest, const std::string& what) {
  if (!IsDigest(digest)) {
    throw Error(ErrorCode::kInvalidArgument,
                what + " \"" + digest + "\" is not a SHA-256 digest");
  }
}

}  // namespace

void SqliteLineageDb::RecordEpoch(const EpochRecord& epoch,
                                  const BlobList& blobs) {
  RequireDigest(epoch.checkpoint, "checkpoint");
  if (epoch.epoch < 0) {
    throw Error(ErrorCode::kInvalidArgument,
                "epoch must be >= 0, got " + std::to_string(epoch.epoch));
  }
  const std::string what = "trial " + std::to_string(epoch.trial_id) +
                           " epoch " + std::to_string(epoch.epoch);
  InTransaction([&] {
    const int64_t stage_id = StageOfTrial(epoch.trial_id);
    {
      Statement s = Prepare(
          "SELECT checkpoint FROM epochs WHERE trial_id = ? AND epoch = ?",
          "reading " + what);
      s.Int(1, epoch.trial_id).Int(2, epoch.epoch);
      if (s.Step()) {
        const std::string existing = s.ColText(0);
        if (existing == epoch.checkpoint) return;
        throw Error(ErrorCode::kConflict, what + " already has checkpoint " +
                                              existing + ", not " +
                                              epoch.checkpoint);
      }
    }
    RecordCheckpointRows(epoch.checkpoint, epoch.trial_id, epoch.epoch,
                         stage_id, blobs);
    Prepare(
        "INSERT INTO epochs (trial_id, epoch, metrics, checkpoint, seconds, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?)",
        "recording " + what)
        .Int(1, epoch.trial_id)
        .Int(2, epoch.epoch)
        .JsonText(3, epoch.metrics)
        .Text(4, epoch.checkpoint)
        .Real(5, epoch.seconds)
        .Real(6, epoch.created_at == 0 ? Now() : epoch.created_at)
        .Run();
    AddEdge(Edge{"checkpoint:" + epoch.checkpoint,
                 "trial:" + std::to_string(epoch.trial_id), "derived_from",
                 Json{{"epoch", epoch.epoch}}});
  });
}

std::vector<EpochRecord> SqliteLineageDb::GetEpochs(int64_t trial_id) {
  Reading read(*this);
  Statement s = read.Prepare(
      "SELECT trial_id, epoch, metrics, checkpoint, seconds, created_at "
      "FROM epochs WHERE trial_id = ? ORDER BY epoch",
      "listing the epochs of trial " + std::to_string(trial_id));
  s.Int(1, trial_id);
  std::vector<EpochRecord> epochs;
  while (s.Step()) {
    epochs.push_back(EpochRecord{s.ColInt(0), static_cast<int>(s.ColInt(1)),
                                 s.ColJson(2), s.ColText(3), s.ColReal(4),
                                 s.ColReal(5)});
  }
  return epochs;
}

// The derived_from edge is added only when this is the checkpoint's first
// recording: a trial that starts from another trial's weights did not
// produce them (the caller records initialized_from for that).
void SqliteLineageDb::RecordCheckpoint(const std::string& digest,
                                       int64_t trial_id, int epoch,
                                       const BlobList& blobs) {
  RequireDigest(digest, "checkpoint");
  if (epoch < -1) {
    throw Error(ErrorCode::kInvalidArgument,
                "epoch must be >= -1, got " + std::to_string(epoch));
  }
  InTransaction([&] {
    const int64_t stage_id = StageOfTrial(trial_id);
    if (RecordCheckpointRows(digest, trial_id, epoch, stage_id, blobs)) {
      AddEdge(Edge{"checkpoint:" + digest,
                   "trial:" + std::to_string(trial_id), "derived_from",
                   Json{{"epoch", epoch}}});
    }
  });
}

std::optional<std::pair<int64_t, int>> SqliteLineageDb::FindCheckpoint(
    const std::string& digest) {
  Reading read(*this);
  Statement s =
      read.Prepare("SELECT trial_id, epoch FROM checkpoints WHERE digest = ?",
                   "looking up checkpoint " + digest);
  s.Text(1, digest);
  if (!s.Step()) return std::nullopt;
  return std::make_pair(s.ColInt(0), static_cast<int>(s.ColInt(1)));
}

// The index checkpoint_blobs_by_blob holds (blob, checkpoint), so this
// reads the first `limit` rows in order without sorting.
std::vector<std::string> SqliteLineageDb::CheckpointsWithBlob(
    const std::string& blob, int limit) {
  if (limit < 0) {
    throw Error(ErrorCode::kInvalidArgument,
                "limit must be >= 0, got " + std::to_string(limit));
  }
  Reading read(*this);
  Statement s = read.Prepare(
      "SELECT checkpoint FROM checkpoint_blobs WHERE blob = ? "
      "ORDER BY checkpoint LIMIT ?",
      "listing the checkpoints that hold blob " + blob);
  s.Text(1, blob).Int(2, limit);
  std::vector<std::string> digests;
  while (s.Step()) digests.push_back(s.ColText(0));
  return digests;
}

void SqliteLineageDb::PutArtifact(const std::string& digest,
                                  const std::string& kind, int64_t stage_id,
                                  const Json& meta, const BlobList& blobs) {
  RequireDigest(digest, "artifact");
  InTransaction([&] {
    const int added =
        Prepare(
            "INSERT OR IGNORE INTO artifacts (digest, kind, stage_id, meta, "
            "created_at) VALUES (?, ?, ?, ?, ?)",
            "storing artifact " + digest)
            .Text(1, digest)
            .Text(2, kind)
            .OptionalId(3, stage_id)
            .JsonText(4, meta)
            .Real(5, Now())
            .Run();
    if (added == 0) return;
    for (const auto& [blob, size] : blobs) {
      AccountBlob(blob, size, stage_id);
      Prepare(
          "INSERT OR IGNORE INTO artifact_blobs (artifact, blob) "
          "VALUES (?, ?)",
          "linking artifact " + digest + " to its blobs")
          .Text(1, digest)
          .Text(2, blob)
          .Run();
    }
  });
}

// {"digest", "kind", "stage_id" (0 if none), "meta", "created_at"}.
std::optional<Json> SqliteLineageDb::GetArtifact(const std::string& digest) {
  Reading read(*this);
  Statement s = read.Prepare(
      "SELECT kind, COALESCE(stage_id, 0), meta, created_at FROM artifacts "
      "WHERE digest = ?",
      "reading artifact " + digest);
  s.Text(1, digest);
  if (!s.Step()) return std::nullopt;
  return Json{{"digest", digest},
              {"kind", s.ColText(0)},
              {"stage_id", s.ColInt(1)},
              {"meta", s.ColJson(2)},
              {"created_at", s.ColReal(3)}};
}

void SqliteLineageDb::AddEdge(const Edge& edge) {
  if (edge.src.empty() || edge.dst.empty() || edge.kind.empty()) {
    throw Error(ErrorCode::kInvalidArgument,
                "an edge needs a source, a destination and a kind");
  }
  std::lock_guard<std::recursive_mutex> lock(mu_);
  Prepare(
      "INSERT OR IGNORE INTO edges (src, dst, kind, attrs, created_at) "
      "VALUES (?, ?, ?, ?, ?)",
      "adding edge " + edge.src + " -> " + edge.dst)
      .Text(1, edge.src)
      .Text(2, edge.dst)
      .Text(3, edge.kind)
      .JsonText(4, edge.attrs)
      .Real(5, Now())
      .Run();
}

std::vector<Edge> SqliteLineageDb::Upstream(const std::string& node,
                                            int depth) {
  return Traverse(node, depth, /*upstream=*/true);
}

std::vector<Edge> SqliteLineageDb::Downstream(const std::string& node,
                                              int depth) {
  return Traverse(node, depth, /*upstream=*/false);
}

std::pair<uint64_t, uint64_t> SqliteLineageDb::CheckpointBytes(
    const std::string& digest, int64_t stage_id) {
  Reading read(*this);
  Statement s = read.Prepare(R"sql(
SELECT COALESCE(SUM(b.size), 0),
       COALESCE(SUM(CASE WHEN b.first_stage_id = ?2 THEN b.size ELSE 0 END), 0)
  FROM checkpoint_blobs cb JOIN blobs b ON b.digest = cb.blob
 WHERE cb.checkpoint = ?1)sql",
                             "computing a checkpoint's bytes");
  s.Text(1, digest);
  s.Int(2, stage_id);
  if (!s.Step()) return {0, 0};
  return {static_cast<uint64_t>(s.ColInt(0)), static_cast<uint64_t>(s.ColInt(1))};
}

BlobList SqliteLineageDb::CheckpointBlobs(const std::string& digest) {
  Reading read(*this);
  Statement s = read.Prepare(R"sql(
SELECT b.digest, b.size
  FROM checkpoint_blobs cb JOIN blobs b ON b.digest = cb.blob
 WHERE cb.checkpoint = ?1 ORDER BY b.digest)sql",
                             "listing a checkpoint's blobs");
  s.Text(1, digest);
  BlobList out;
  while (s.Step()) out.emplace_back(s.ColText(0), static_cast<uint64_t>(s.ColInt(1)));
  return out;
}

uint64_t SqliteLineageDb::ArtifactBytes(const std::string& digest) {
  Reading read(*this);
  Statement s = read.Prepare(R"sql(
SELECT COALESCE(SUM(b.size), 0)
  FROM artifact_blobs ab JOIN blobs b ON b.digest = ab.blob
 WHERE ab.artifact = ?1)sql",
                             "computing an artifact's bytes");
  s.Text(1, digest);
  return s.Step() ? static_cast<uint64_t>(s.ColInt(0)) : 0;
}

std::vector<std::string> SqliteLineageDb::ReferencedBlobs() {
  Reading read(*this);
  // Every accounted blob is linked to a checkpoint or an artifact, so the
  // links (of kept checkpoints) say which blobs are referred to.
  Statement s = read.Prepare(R"sql(
SELECT cb.blob FROM checkpoint_blobs cb
  JOIN checkpoints c ON c.digest = cb.checkpoint WHERE c.released_at = 0
UNION SELECT digest FROM checkpoints WHERE released_at = 0
UNION SELECT blob FROM artifact_blobs
UNION SELECT digest FROM artifacts
UNION SELECT output FROM stages WHERE output != ''
UNION SELECT output FROM trials WHERE output != ''
 AND output NOT IN (SELECT digest FROM checkpoints WHERE released_at != 0)
UNION SELECT initial_checkpoint FROM trials WHERE initial_checkpoint != ''
 AND initial_checkpoint NOT IN (SELECT digest FROM checkpoints WHERE released_at != 0)
UNION SELECT json_extract(resolved, '$.comparison') FROM stages
 WHERE json_extract(resolved, '$.comparison') IS NOT NULL
UNION SELECT json_extract(resolved, '$.logs.stdout') FROM stages
 WHERE json_extract(resolved, '$.logs.stdout') IS NOT NULL
UNION SELECT json_extract(resolved, '$.logs.stderr') FROM stages
 WHERE json_extract(resolved, '$.logs.stderr') IS NOT NULL)sql",
                             "listing the blobs the lineage refers to");
  std::vector<std::string> out;
  while (s.Step()) out.push_back(s.ColText(0));
  return out;
}

std::vector<std::string> SqliteLineageDb::ListCheckpoints() {
  return Digests(
      "SELECT digest FROM checkpoints WHERE released_at = 0 ORDER BY digest",
      "listing the recorded checkpoints");
}

std::vector<std::string> SqliteLineageDb::ListArtifacts() {
  return Digests("SELECT digest FROM artifacts ORDER BY digest",
                 "listing the recorded artifacts");
}

// For a few blobs at a time (fsck's problems): the stage and trial
// outputs are not indexed, so each call scans those two tables.
std::vector<std::string> SqliteLineageDb::BlobReferrers(const std::string& blob,
                                                        int limit) {
  if (limit < 0) {
    throw Error(ErrorCode::kInvalidArgument,
                "limit must be >= 0, got " + std::to_string(limit));
  }
  Reading read(*this);
  Statement s = read.Prepare(R"sql(
SELECT 'checkpoint:' || checkpoint FROM checkpoint_blobs WHERE blob = ?1
UNION SELECT 'checkpoint:' || digest FROM checkpoints WHERE digest = ?1
UNION SELECT 'trial:' || trial_id FROM checkpoint_records WHERE digest = ?1
UNION SELECT 'artifact:' || artifact FROM artifact_blobs WHERE blob = ?1
UNION SELECT 'artifact:' || digest FROM artifacts WHERE digest = ?1
UNION SELECT 'stage:' || stage_id FROM artifacts
 WHERE digest = ?1 AND stage_id IS NOT NULL
UNION SELECT 'stage:' || id FROM stages
 WHERE output = ?1 OR json_extract(resolved, '$.comparison') = ?1
UNION SELECT 'trial:' || id FROM trials
 WHERE output = ?1 OR initial_checkpoint = ?1
ORDER BY 1 LIMIT ?2)sql",
                             "listing what refers to blob " + blob);
  s.Text(1, blob).Int(2, limit);
  std::vector<std::string> out;
  while (s.Step()) out.push_back(s.ColText(0));
  return out;
}

int64_t SqliteLineageDb::StageOfTrial(int64_t trial_id) {
  Statement s = Prepare("SELECT stage_id FROM trials WHERE id = ?",
                        "looking up a trial");
  s.Int(1, trial_id);
  if (!s.Step()) throw NotFound("trial " + std::to_string(trial_id));
  return s.ColInt(0);
}

// Adds the blob to the accounting (first recording wins) and checks that
// its size agrees with earlier recordings.
void SqliteLineageDb::AccountBlob(const std::string& digest, uint64_t size,
                                  int64_t stage_id) {
  RequireDigest(digest, "blob");
  Prepare(
      "INSERT OR IGNORE INTO blobs (digest, size, first_stage_id, "
      "created_at) VALUES (?, ?, ?, ?)",
      "accounting blob " + digest)
      .Text(1, digest)
      .Int(2, static_cast<int64_t>(size))
      .OptionalId(3, stage_id)
      .Real(4, Now())
      .Run();
  Statement s = Prepare("SELECT size FROM blobs WHERE digest = ?",
                        "reading blob " + digest);
  s.Text(1, digest);
  if (s.Step() && static_cast<uint64_t>(s.ColInt(0)) != size) {
    throw Error(ErrorCode::kInvalidArgument,
                "blob " + digest + " was recorded with " +
                    std::to_string(s.ColInt(0)) + " bytes, now with " +
                    std::to_string(size));
  }
}

// Checkpoint row (first recording), this recording, and byte accounting.
// Returns true if the checkpoint was new. Runs inside a transaction.
bool SqliteLineageDb::RecordCheckpointRows(const std::string& digest,
                                           int64_t trial_id, int epoch,
                                           int64_t stage_id,
                                           const BlobList& blobs) {
  retention_touched_ = true;  // inside the caller's transaction, under mu_
  const bool added = Prepare(
                         "INSERT OR IGNORE INTO checkpoints "
                         "(digest, trial_id, epoch, created_at) "
                         "VALUES (?, ?, ?, ?)",
                         "recording checkpoint " + digest)
                         .Text(1, digest)
                         .Int(2, trial_id)
                         .Int(3, epoch)
                         .Real(4, Now())
                         .Run() > 0;
  if (!added) {
    // Recorded again (the same weights from a new epoch): kept again.
    Prepare("UPDATE checkpoints SET released_at = 0 WHERE digest = ?",
            "keeping checkpoint " + digest)
        .Text(1, digest)
        .Run();
  }
  Prepare(
      "INSERT OR IGNORE INTO checkpoint_records (digest, trial_id, epoch) "
      "VALUES (?, ?, ?)",
      "recording checkpoint " + digest)
      .Text(1, digest)
      .Int(2, trial_id)
      .Int(3, epoch)
      .Run();
  for (const auto& [blob, size] : blobs) {
    AccountBlob(blob, size, stage_id);
    Prepare(
        "INSERT OR IGNORE INTO checkpoint_blobs (checkpoint, blob) "
        "VALUES (?, ?)",
        "linking checkpoint " + digest + " to its blobs")
        .Text(1, digest)
        .Text(2, blob)
        .Run();
  }
  return added;
}

// Breadth first from `node`; every node is expanded once, so each edge is
// returned once and cycles end. More than one hop reads one snapshot, so
// that an edge written meanwhile cannot show up in a later hop only.
std::vector<Edge> SqliteLineageDb::Traverse(const std::string& node, int depth,
                                            bool upstream) {
  Reading read(*this);
  const std::string sql =
      std::string("SELECT src, dst, kind, attrs FROM edges WHERE ") +
      (upstream ? "src" : "dst") + " = ? ORDER BY rowid";
  std::vector<Edge> edges;
  auto walk = [&] {
    std::set<std::string> visited = {node};
    std::vector<std::string> frontier = {node};
    for (int hop = 0; hop < depth && !frontier.empty(); ++hop) {
      std::vector<std::string> next;
      for (const std::string& current : frontier) {
        Statement s = read.Prepare(sql, "following the lineage of " + current);
        s.Text(1, current);
        while (s.Step()) {
          Edge edge{s.ColText(0), s.ColText(1), s.ColText(2), s.ColJson(3)};
          const std::string& other = upstream ? edge.dst : edge.src;
          if (visited.insert(other).second) next.push_back(other);
          edges.push_back(std::move(edge));
        }
      }
      frontier = std::move(next);
    }
  };
  if (depth > 1) {
    read.connection().ReadTransaction(walk);
  } else {
    walk();
  }
  return edges;
}

}  // namespace baton::store::detail

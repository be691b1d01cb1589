// The SqliteLineageDb members that retention and `store du` use: pinned
// runs, released checkpoints, edges of one kind, and disk use per stage.
#include "store/internal/sqlite_lineage_db.h"

#include <mutex>

namespace baton::store::detail {

void SqliteLineageDb::PinRun(const std::string& run_id) {
  InTransaction([&] {
    retention_touched_ = true;
    if (!GetRun(run_id)) throw NotFound("run " + run_id);
    Prepare("INSERT OR IGNORE INTO pins (run_id, created_at) VALUES (?, ?)",
            "pinning run " + run_id)
        .Text(1, run_id)
        .Real(2, Now())
        .Run();
  });
}

void SqliteLineageDb::UnpinRun(const std::string& run_id) {
  InTransaction([&] {
    retention_touched_ = true;
    if (!GetRun(run_id)) throw NotFound("run " + run_id);
    Prepare("DELETE FROM pins WHERE run_id = ?", "unpinning run " + run_id)
        .Text(1, run_id)
        .Run();
  });
}

std::vector<std::string> SqliteLineageDb::PinnedRuns() {
  return Digests("SELECT run_id FROM pins ORDER BY run_id",
                 "listing the pinned runs");
}

void SqliteLineageDb::ReleaseCheckpoints(
    const std::vector<std::string>& digests) {
  const double now = Now();
  InTransaction([&] {
    retention_touched_ = true;
    for (const std::string& digest : digests) {
      Prepare(
          "UPDATE checkpoints SET released_at = ? "
          "WHERE digest = ? AND released_at = 0",
          "releasing checkpoint " + digest)
          .Real(1, now)
          .Text(2, digest)
          .Run();
    }
  });
}

double SqliteLineageDb::CheckpointReleasedAt(const std::string& digest) {
  Reading read(*this);
  Statement s =
      read.Prepare("SELECT released_at FROM checkpoints WHERE digest = ?",
                   "reading checkpoint " + digest);
  s.Text(1, digest);
  return s.Step() ? s.ColReal(0) : 0;
}

std::vector<std::string> SqliteLineageDb::ReleasedCheckpoints() {
  return Digests(
      "SELECT digest FROM checkpoints WHERE released_at != 0 ORDER BY digest",
      "listing the released checkpoints");
}

std::vector<Edge> SqliteLineageDb::EdgesOfKind(const std::string& kind) {
  Reading read(*this);
  Statement s = read.Prepare(
      "SELECT src, dst, kind, attrs FROM edges WHERE kind = ? ORDER BY rowid",
      "listing the " + kind + " edges");
  s.Text(1, kind);
  std::vector<Edge> edges;
  while (s.Step()) {
    edges.push_back(Edge{s.ColText(0), s.ColText(1), s.ColText(2), s.ColJson(3)});
  }
  return edges;
}

std::vector<StageUsage> SqliteLineageDb::Usage(const std::string& run_id) {
  Reading read(*this);
  Statement s = read.Prepare(R"sql(
SELECT s.id, s.run_id, s.name,
  (SELECT COUNT(DISTINCT cr.digest)
     FROM trials t JOIN checkpoint_records cr ON cr.trial_id = t.id
    WHERE t.stage_id = s.id),
  (SELECT COALESCE(SUM(b.size), 0) FROM blobs b WHERE b.digest IN (
     SELECT cb.blob
       FROM trials t
       JOIN checkpoint_records cr ON cr.trial_id = t.id
       JOIN checkpoint_blobs cb ON cb.checkpoint = cr.digest
      WHERE t.stage_id = s.id
     UNION
     SELECT ab.blob
       FROM artifacts a JOIN artifact_blobs ab ON ab.artifact = a.digest
      WHERE a.stage_id = s.id)),
  (SELECT COALESCE(SUM(b.size), 0) FROM blobs b WHERE b.first_stage_id = s.id)
FROM stages s
WHERE ?1 = '' OR s.run_id = ?1
ORDER BY s.id)sql",
                             "computing disk use");
  s.Text(1, run_id);
  std::vector<StageUsage> usage;
  while (s.Step()) {
    usage.push_back(StageUsage{s.ColInt(0), s.ColText(1), s.ColText(2),
                               static_cast<uint64_t>(s.ColInt(3)),
                               static_cast<uint64_t>(s.ColInt(4)),
                               static_cast<uint64_t>(s.ColInt(5))});
  }
  return usage;
}

}  // namespace baton::store::detail

#pragma once

#include <vector>

#include "store/lineage_db.h"
#include "store/internal/sql_connection.h"

namespace baton::store {

// The lineage DB's tables, internal to store/.
//
// The migrations, in order: entry i moves the schema from version i to i + 1
// (SQLite's user_version). Released entries are never edited; a schema change
// appends one.
const std::vector<const char*>& LineageMigrations();

// How rows of the current schema map to records: a SELECT of k*Cols, read
// with the matching Read* function.
namespace lineage_rows {

extern const char* const kRunCols;
extern const char* const kStageCols;
extern const char* const kTrialCols;

RunRecord ReadRun(const sql::Statement& s);
StageRecord ReadStage(const sql::Statement& s);
TrialRecord ReadTrial(const sql::Statement& s);

}  // namespace lineage_rows

}  // namespace baton::store

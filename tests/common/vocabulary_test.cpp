// The typed words for statuses and stage types: each names one value and
// parses back to it, nothing else parses, what counts as finished, and the
// lists store/lineage_db.h documents for its records are exactly these.
#include "common/vocabulary.h"

#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

namespace baton {
namespace {

template <class E, size_t N>
std::set<std::string> Names(const E (&all)[N]) {
  std::set<std::string> out;
  for (E e : all) out.insert(std::string(Name(e)));
  return out;
}

TEST(Vocabulary, EachWordParsesBackToItsValue) {
  for (RunStatus s : kRunStatuses) EXPECT_EQ(ParseRunStatus(Name(s)), s) << Name(s);
  for (StageStatus s : kStageStatuses) EXPECT_EQ(ParseStageStatus(Name(s)), s) << Name(s);
  for (TrialStatus s : kTrialStatuses) EXPECT_EQ(ParseTrialStatus(Name(s)), s) << Name(s);
  for (StageType t : kStageTypes) EXPECT_EQ(ParseStageType(Name(t)), t) << Name(t);
  for (TaskKind k : kTaskKinds) EXPECT_EQ(ParseTaskKind(Name(k)), k) << Name(k);
  EXPECT_EQ(Names(kRunStatuses).size(), std::size(kRunStatuses)) << "two values with one word";
  EXPECT_EQ(Names(kStageStatuses).size(), std::size(kStageStatuses));
  EXPECT_EQ(Names(kTrialStatuses).size(), std::size(kTrialStatuses));
  for (const char* other : {"", "Succeeded", "done", "succeeded ", "pruned"}) {
    EXPECT_FALSE(ParseRunStatus(other)) << other;
  }
  EXPECT_FALSE(ParseStageStatus("pruned"));
  EXPECT_FALSE(ParseTrialStatus("cached"));
  EXPECT_FALSE(ParseStageType("shell"));
  EXPECT_FALSE(ParseTaskKind("tune"));
}

// The wire format: these words are in lineage DBs and API clients already.
TEST(Vocabulary, TheWordsAreTheWireFormat) {
  EXPECT_EQ(Names(kRunStatuses),
            (std::set<std::string>{"pending", "running", "succeeded", "failed", "cancelled", "interrupted"}));
  EXPECT_EQ(Names(kStageStatuses), (std::set<std::string>{"pending", "running", "succeeded", "failed", "cached",
                                                          "skipped", "cancelled", "interrupted"}));
  EXPECT_EQ(Names(kTrialStatuses), (std::set<std::string>{"pending", "running", "succeeded", "failed", "diverged",
                                                          "pruned", "skipped", "cancelled"}));
  EXPECT_EQ(Names(kStageTypes), (std::set<std::string>{"prepare", "tune", "ablate", "train", "command"}));
  EXPECT_EQ(Names(kTaskKinds), (std::set<std::string>{"prepare", "train", "command"}));  // docs/worker-protocol.md
}

// One rule per kind. A cancelled stage is finished (gc applies its policy;
// it kept every checkpoint while retention had its own list); interrupted
// runs and stages are not (resume goes on with them).
TEST(Vocabulary, WhatIsFinished) {
  std::set<std::string> runs, stages, trials;
  for (RunStatus s : kRunStatuses) if (IsFinished(s)) runs.insert(std::string(Name(s)));
  for (StageStatus s : kStageStatuses) if (IsFinished(s)) stages.insert(std::string(Name(s)));
  for (TrialStatus s : kTrialStatuses) if (IsFinished(s)) trials.insert(std::string(Name(s)));
  EXPECT_EQ(runs, (std::set<std::string>{"succeeded", "failed", "cancelled"}));
  EXPECT_EQ(stages, (std::set<std::string>{"succeeded", "failed", "cached", "skipped", "cancelled"}));
  EXPECT_EQ(trials, (std::set<std::string>{"succeeded", "failed", "diverged", "pruned", "skipped", "cancelled"}));
  EXPECT_TRUE(StageFinished("cancelled"));
  EXPECT_FALSE(StageFinished("interrupted"));
  EXPECT_FALSE(RunFinished("interrupted"));
  EXPECT_FALSE(TrialFinished("no such status"));
}

// The record comments in store/lineage_db.h list exactly these words.
TEST(Vocabulary, TheLineageDbDocumentsEveryWord) {
  std::ifstream in(BATON_SOURCE_DIR "/store/lineage_db.h");
  ASSERT_TRUE(in) << "cannot read store/lineage_db.h";
  std::stringstream text;
  text << in.rdbuf();
  const std::string h = text.str();
  // The "a | b | c" comment of `field` in `struct record { ... };`.
  auto documented = [&](const std::string& record, const std::string& field) {
    const size_t at = h.find("struct " + record + " {");
    const size_t end = h.find("};", at);
    EXPECT_NE(at, std::string::npos) << record;
    const std::string body = h.substr(at, end - at);
    std::smatch m;
    const std::regex line("std::string " + field + ";\\s*//\\s*([a-z_ |]+)");
    EXPECT_TRUE(std::regex_search(body, m, line)) << record << "." << field;
    std::set<std::string> words;
    std::stringstream list(m.size() > 1 ? m[1].str() : "");
    for (std::string w; list >> w;) if (w != "|") words.insert(w);
    return words;
  };
  EXPECT_EQ(documented("RunRecord", "status"), Names(kRunStatuses));
  EXPECT_EQ(documented("StageRecord", "type"), Names(kStageTypes));
  EXPECT_EQ(documented("StageRecord", "status"), Names(kStageStatuses));
  EXPECT_EQ(documented("TrialRecord", "status"), Names(kTrialStatuses));
  EXPECT_EQ(documented("TrialRecord", "kind"), Names(kTaskKinds));
}

}  // namespace
}  // namespace baton

// What `baton run` / `baton resume` print while a run goes on
// (api/internal/progress.h): a resumed stage counts the trials that had ended before
// the resume, in the log lines and in the live lines.
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <string>

#include "api/internal/progress.h"
#include "common/vocabulary.h"
#include "orchestrator/stage_spec.h"

namespace baton::api {
namespace {

// Everything written to `f` so far.
std::string Contents(std::FILE* f) {
  std::fflush(f);
  std::rewind(f);
  std::string out;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof(buf), f)) > 0;) out.append(buf, n);
  return out;
}

orchestrator::Event Event(const std::string& type, const std::string& stage, Json data, int trial = -1) {
  orchestrator::Event e;
  e.type = type;
  e.run_id = "20261129-000000-abcd";
  e.stage = stage;
  e.trial_id = trial >= 0 ? trial + 1 : 0;
  e.trial_number = trial;
  e.data = std::move(data);
  e.time = 1.0e9;
  return e;
}

const Json kResumedTune = {{"type", "tune"}, {"tasks", 4}, {"max_parallel", 2}, {"resumed", true},
                           {"finished_before", 2}};

// One tune stage maximising val_accuracy.
std::map<std::string, orchestrator::StageSpec> TuneStage() {
  orchestrator::StageSpec tune;
  tune.name = "tune";
  tune.type = StageType::kTune;
  return {{"tune", tune}};
}

TEST(ProgressPrinter, ALoggedResumedStageSaysHowManyTrialsHadEnded) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  {
    ProgressPrinter printer(f, /*live=*/false, TuneStage(), {"tune"});
    printer.OnEvent(Event("stage_started", "tune", kResumedTune));
    printer.OnEvent(Event("stage_started", "other", {{"type", "tune"}, {"tasks", 3}}));
  }
  const std::string out = Contents(f);
  std::fclose(f);
  EXPECT_NE(out.find("tune: resumed, 4 task(s), 2 of them finished before"), std::string::npos) << out;
  EXPECT_NE(out.find("other: started, 3 task(s)\n"), std::string::npos) << out;
}

TEST(ProgressPrinter, ALiveResumedStageCountsTheTrialsThatHadEnded) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  {
    ProgressPrinter printer(f, /*live=*/true, TuneStage(), {"tune"});
    printer.OnEvent(Event("stage_started", "tune", kResumedTune));
    EXPECT_NE(Contents(f).find("trials 2/4"), std::string::npos) << Contents(f);
    std::fseek(f, 0, SEEK_END);
    printer.OnEvent(Event("trial_finished", "tune", {{"status", "succeeded"}}, 2));
    printer.Finish();
  }
  const std::string out = Contents(f);
  std::fclose(f);
  EXPECT_NE(out.find("trials 3/4"), std::string::npos) << out;
}

}  // namespace
}  // namespace baton::api

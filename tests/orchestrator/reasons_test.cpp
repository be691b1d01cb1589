// A failed stage's summary names each reason once with the trials it hit.
#include "orchestrator/internal/reasons.h"

#include <gtest/gtest.h>

namespace baton::orchestrator {
namespace {

TEST(GroupReasons, EachReasonOnceWithItsTrials) {
  EXPECT_EQ(GroupReasons({{0, "x"}, {1, "x"}, {2, "x"}, {4, "y"}, {5, "x"}}), "trials 0-2, 5: x; trial 4: y");
  EXPECT_EQ(GroupReasons({{3, "out of memory"}}), "trial 3: out of memory");
  EXPECT_EQ(GroupReasons({{0, "a"}, {1, "a"}}), "trials 0, 1: a");
  EXPECT_EQ(GroupReasons({{2, ""}}), "trial 2: no reason recorded");
  EXPECT_EQ(GroupReasons({}), "");
}

TEST(GroupReasons, ManyReasonsAreCutShortSayingHowMany) {
  std::vector<std::pair<int, std::string>> trials;
  for (int i = 0; i < 100; ++i) trials.push_back({i, "reason number " + std::to_string(i)});
  const std::string s = GroupReasons(trials, 200);
  EXPECT_LE(s.size(), 230u) << s;
  EXPECT_EQ(s.rfind("trial 0: reason number 0", 0), 0u) << s;
  EXPECT_NE(s.find("other reasons"), std::string::npos) << s;
  // One reason is given whatever its length.
  EXPECT_EQ(GroupReasons({{0, std::string(1000, 'z')}}, 10), "trial 0: " + std::string(1000, 'z'));
}

}  // namespace
}  // namespace baton::orchestrator

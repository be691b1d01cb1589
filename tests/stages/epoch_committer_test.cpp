#include "stages/epoch_committer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <stdexcept>
#include <vector>

namespace baton::stages {
namespace {

TEST(EpochCommitter, RunsCommitsInOrderOneAtATime) {
  std::vector<int> order;
  int in_flight = 0, most = 0;
  EpochCommitter committer;
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(committer.Submit([&, i] {
      most = std::max(most, ++in_flight);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      order.push_back(i);
      --in_flight;
      return true;
    }));
  }
  EXPECT_TRUE(committer.Wait());
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_EQ(most, 1);
  EXPECT_FALSE(committer.StopRequested());
}

TEST(EpochCommitter, SubmitReturnsBeforeTheCommitEnds) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  EpochCommitter committer;
  // The commit cannot end until the test releases it, so Submit returning
  // proves the caller went on while it was in flight.
  ASSERT_TRUE(committer.Submit([released] {
    released.wait();
    return true;
  }));
  release.set_value();
  EXPECT_TRUE(committer.Wait());
}

TEST(EpochCommitter, StopAnswerRaisesTheFlagAndRefusesLaterCommits) {
  EpochCommitter committer;
  ASSERT_TRUE(committer.Submit([] { return false; }));
  EXPECT_FALSE(committer.Wait());
  EXPECT_TRUE(committer.StopRequested());
  bool ran = false;
  EXPECT_FALSE(committer.Submit([&] {
    ran = true;
    return true;
  }));
  EXPECT_FALSE(committer.Wait());
  EXPECT_FALSE(ran);
}

TEST(EpochCommitter, FailureIsRethrownToTheTrainer) {
  EpochCommitter committer;
  ASSERT_TRUE(committer.Submit([]() -> bool { throw std::runtime_error("coordinator said 400"); }));
  // The flag rises so the trainer stops at its next batch...
  for (int i = 0; i < 1000 && !committer.StopRequested(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_TRUE(committer.StopRequested());
  // ... and the failure reaches it, from Wait or from the next Submit.
  EXPECT_THROW(
      {
        try {
          committer.Wait();
        } catch (const std::runtime_error& e) {
          EXPECT_STREQ(e.what(), "coordinator said 400");
          throw;
        }
      },
      std::runtime_error);
}

TEST(EpochCommitter, NextSubmitRethrowsAnEarlierFailure) {
  EpochCommitter committer;
  ASSERT_TRUE(committer.Submit([]() -> bool { throw std::runtime_error("disk full"); }));
  bool ran = false;
  EXPECT_THROW(committer.Submit([&] {
    ran = true;
    return true;
  }),
               std::runtime_error);
  EXPECT_FALSE(ran);
}

}  // namespace
}  // namespace baton::stages

// Importance-aware partitioning's heuristics on scores the test chooses:
// every example goes to exactly one rank; "balanced" evens out the
// importance the ranks hold, "sorted" gives each rank a block of the
// importance order; ties and digests are deterministic.
#include "stages/data_parallel.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>

#include "common/error.h"

namespace baton::stages {
namespace {

double Sum(const std::vector<float>& scores, const std::vector<int64_t>& part) {
  double s = 0;
  for (int64_t i : part) s += scores[i];
  return s;
}

std::vector<float> Scores(int n) {
  std::vector<float> scores(n);
  for (int i = 0; i < n; ++i) scores[i] = static_cast<float>((i * 37) % n) / n;  // a permutation of 0..(n-1)/n
  return scores;
}

TEST(PartitionByImportanceTest, BalancedEvensOutTheImportanceEachRankHolds) {
  const std::vector<float> scores = Scores(1000);
  const auto parts = PartitionByImportance(scores, 4, "balanced");
  ASSERT_EQ(parts.size(), 4u);
  std::set<int64_t> all;
  for (const auto& p : parts) {
    EXPECT_EQ(p.size(), 250u);
    EXPECT_TRUE(std::is_sorted(p.begin(), p.end()));
    all.insert(p.begin(), p.end());
  }
  EXPECT_EQ(all.size(), 1000u) << "every example on exactly one rank";
  const double total = std::accumulate(scores.begin(), scores.end(), 0.0);
  for (const auto& p : parts) {
    // Snake dealing: within one example's score of a quarter.
    EXPECT_NEAR(Sum(scores, p), total / 4, 1.0);
  }
  // Each rank holds hard and easy examples alike.
  for (const auto& p : parts) {
    const auto [lo, hi] = std::minmax_element(p.begin(), p.end(), [&](int64_t a, int64_t b) { return scores[a] < scores[b]; });
    EXPECT_LT(scores[*lo], 0.01f);
    EXPECT_GT(scores[*hi], 0.99f);
  }
}

TEST(PartitionByImportanceTest, SortedGivesEachRankABlockOfTheImportanceOrder) {
  const std::vector<float> scores = Scores(1000);
  const auto parts = PartitionByImportance(scores, 2, "sorted");
  ASSERT_EQ(parts.size(), 2u);
  ASSERT_EQ(parts[0].size(), 500u);
  ASSERT_EQ(parts[1].size(), 500u);
  float least_of_first = 1, most_of_second = 0;
  for (int64_t i : parts[0]) least_of_first = std::min(least_of_first, scores[i]);
  for (int64_t i : parts[1]) most_of_second = std::max(most_of_second, scores[i]);
  EXPECT_GT(least_of_first, most_of_second) << "rank 0 holds the most important half";
}

TEST(PartitionByImportanceTest, TiesGoByIndexAndDigestsNameTheIndices) {
  const std::vector<float> flat(10, 1.0f);
  const auto a = PartitionByImportance(flat, 3, "balanced");
  EXPECT_EQ(a, PartitionByImportance(flat, 3, "balanced"));
  // Index order dealt in snake order: 0 1 2 | 5 4 3 | 6 7 8 | 9.
  EXPECT_EQ(a[0], (std::vector<int64_t>{0, 5, 6}));
  EXPECT_EQ(a[1], (std::vector<int64_t>{1, 4, 7}));
  EXPECT_EQ(a[2], (std::vector<int64_t>{2, 3, 8, 9}));
  EXPECT_EQ(PartitionDigest(a[0]), PartitionDigest({0, 5, 6}));
  EXPECT_NE(PartitionDigest(a[0]), PartitionDigest(a[1]));
  EXPECT_EQ(PartitionDigest({}).size(), 64u);
  EXPECT_THROW(PartitionByImportance(flat, 2, "random"), Error);
}

}  // namespace
}  // namespace baton::stages

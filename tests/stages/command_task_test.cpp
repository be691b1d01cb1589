// The command task against an in-memory coordinator: what it reports, the
// manifest of its outs, the end of stderr in a failure, and TailLines.
#include "stages/command_task.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "common/digest.h"
#include "store/checkpoint.h"
#include "tests/support/temp_dir.h"

namespace baton::stages {
namespace {

namespace fs = std::filesystem;

// Keeps blobs and the last :complete or :fail body.
class MemoryClient : public CoordinatorClient {
 public:
  std::map<std::string, std::string> blobs;
  Json completed, failed;

  std::optional<Json> NextTask(int64_t) override { return std::nullopt; }
  std::string GetBlob(const std::string& digest) override { return blobs.at(digest); }
  std::vector<std::string> MissingBlobs(const std::vector<std::string>& digests) override {
    std::vector<std::string> missing;
    for (const auto& d : digests) {
      if (!blobs.count(d)) missing.push_back(d);
    }
    return missing;
  }
  void PutBlob(const std::string& digest, const std::string& bytes) override {
    EXPECT_EQ(Sha256Hex(bytes), digest);
    blobs[digest] = bytes;
  }
  void ReportInitial(int64_t, const Json&) override {}
  bool ReportEpoch(int64_t, const Json&) override { return true; }
  void Complete(int64_t, const std::string&) override { ADD_FAILURE() << "CompleteWith expected"; }
  void Fail(int64_t, const std::string&, const std::string&) override { ADD_FAILURE() << "FailWith expected"; }
  void CompleteWith(int64_t, const Json& body) override { completed = body; }
  void FailWith(int64_t, const Json& body) override { failed = body; }
};

TEST(CommandTaskTest, OutsBecomeOneFilesManifestNamedFromTheWorkingDirectory) {
  baton::testing::TempDir dir;
  MemoryClient client;
  const Json task = {{"kind", "command"},
                     {"stage", "make"},
                     {"cmd", {"/bin/sh", "-c", "mkdir -p out/d && printf a > out/a.txt && printf b > out/d/b.txt"}},
                     {"workdir", dir.path().string()},
                     {"outs", {"out/a.txt", "out/d/"}}};
  RunCommandTask(client, 7, task);
  ASSERT_TRUE(client.failed.is_null()) << client.failed.dump();
  const std::string digest = client.completed.at("output").get<std::string>();
  const store::Manifest m = store::ParseManifest(client.blobs.at(digest));
  EXPECT_EQ(m.kind, "files");
  ASSERT_EQ(m.tensors.size(), 2u);
  EXPECT_EQ(m.tensors[0].name, "out/a.txt");
  EXPECT_EQ(m.tensors[1].name, "out/d/b.txt");
  EXPECT_EQ(client.blobs.at(m.tensors[1].blob), "b");
  EXPECT_EQ(m.meta["layout"], "folder");
  EXPECT_EQ(client.blobs.at(client.completed["logs"]["stdout"].get<std::string>()), "");
}

TEST(CommandTaskTest, AFailureQuotesTheEndOfStderrAndAMissingOutFails) {
  baton::testing::TempDir dir;
  MemoryClient client;
  Json task = {{"kind", "command"},
               {"cmd", {"/bin/sh", "-c", "for i in 1 2 3 4 5; do echo line$i >&2; done; exit 4"}},
               {"workdir", dir.path().string()}};
  CommandTaskOptions options;
  options.stderr_lines = 2;
  RunCommandTask(client, 1, task, options);
  EXPECT_EQ(client.failed["reason"], "exited with status 4; stderr ends with:\nline4\nline5");
  EXPECT_EQ(client.blobs.at(client.failed["logs"]["stderr"].get<std::string>()), "line1\nline2\nline3\nline4\nline5\n");

  task["cmd"] = {"/bin/true"};
  task["outs"] = {"never.txt"};
  RunCommandTask(client, 2, task);
  EXPECT_NE(client.failed["reason"].get<std::string>().find("did not write its out never.txt"), std::string::npos)
      << client.failed.dump();

  task["cmd"] = {"no-such-program-here"};
  EXPECT_THROW(RunCommandTask(client, 3, task), Error);
}

TEST(CommandTaskTest, TailLinesKeepsTheLastLines) {
  EXPECT_EQ(TailLines("a\nb\nc\n", 2, 100), "b\nc");
  EXPECT_EQ(TailLines("a\nb\nc", 5, 100), "a\nb\nc");
  EXPECT_EQ(TailLines("", 3, 100), "");
  EXPECT_EQ(TailLines("a\n\nb\n", 2, 100), "\nb");
  EXPECT_EQ(TailLines("abcdef\n", 1, 3), "def");
}

}  // namespace
}  // namespace baton::stages

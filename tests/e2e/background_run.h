#pragma once

// `baton --store STORE run PIPELINE ARGS --no-progress` in the background
// (stdout and stderr appended to a log), for end-to-end tests that act on a
// run while it goes on. Needs BATON_BIN and BATON_WORKER_BIN.
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

namespace baton::testing {

class BackgroundRun {
 public:
  BackgroundRun(const std::filesystem::path& store, const std::filesystem::path& pipeline,
                const std::vector<std::string>& args, const std::filesystem::path& log) {
    std::fflush(nullptr);  // the child must not write our buffered output again
    pid_ = fork();
    if (pid_ == 0) {
      setenv("BATON_WORKER", BATON_WORKER_BIN, 1);
      FILE* f = freopen(log.c_str(), "a", stdout);
      if (f != nullptr) dup2(fileno(stdout), 2);
      std::vector<std::string> all = {"baton", "--store", store.string(), "run", pipeline.string()};
      all.insert(all.end(), args.begin(), args.end());
      all.push_back("--no-progress");
      std::vector<char*> argv;
      for (auto& a : all) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(BATON_BIN, argv.data());
      _exit(127);
    }
  }
  ~BackgroundRun() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  BackgroundRun(const BackgroundRun&) = delete;
  BackgroundRun& operator=(const BackgroundRun&) = delete;

  bool started() const { return pid_ > 0 || exit_status_ >= 0; }
  // The `baton` process while it runs (its workers are its children); -1 after.
  pid_t pid() const { return pid_; }
  // Whether it still runs; reaps it (its exit status for Wait) once it ended.
  bool Running() {
    int status = 0;
    if (pid_ <= 0) return false;
    if (waitpid(pid_, &status, WNOHANG) != pid_) return true;
    pid_ = -1;
    exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return false;
  }
  // Waits up to `limit` for it to end; its exit status (-1: still running).
  int Wait(std::chrono::seconds limit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (Running() && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return pid_ > 0 ? -1 : exit_status_;
  }

 private:
  pid_t pid_ = -1;
  int exit_status_ = -1;
};

}  // namespace baton::testing

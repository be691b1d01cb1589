#pragma once

// A `baton serve` child process on a free loopback port, for end-to-end
// tests; needs BATON_BIN and BATON_WORKER_BIN defined (baton_e2e_test does)
// and cpp-httplib linked.
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <httplib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>

namespace baton::testing {

// A `baton serve` child process (stderr appended to <store>/serve.log): its
// port and API token. Stopped with SIGTERM when destroyed.
class Server {
 public:
  Server(const std::filesystem::path& store, const std::string& flags) {
    std::filesystem::create_directories(store);
    const std::string cmd = "exec env BATON_WORKER=" BATON_WORKER_BIN " " BATON_BIN " --store " + store.string() +
                            " serve --port 0 " + flags + " 2>>" + (store / "serve.log").string();
    int out[2];
    if (pipe(out) != 0) throw std::runtime_error("pipe");
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], 1);
      close(out[0]);
      close(out[1]);
      execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    close(out[1]);
    stdout_ = fdopen(out[0], "r");
    char line[512];
    if (fgets(line, sizeof(line), stdout_) == nullptr) throw std::runtime_error("serve printed nothing");
    const std::string text = line;
    const std::string prefix = "listening on http://127.0.0.1:";
    if (text.rfind(prefix, 0) != 0) throw std::runtime_error("unexpected first line: " + text);
    port = std::stoi(text.substr(prefix.size()));
    std::ifstream(store / "api-token") >> token;
  }
  ~Server() { Stop(); }
  // SIGTERM, then the exit status (-1 if it did not exit by itself in 30 s).
  int Stop() {
    if (pid_ <= 0) return status_;
    kill(pid_, SIGTERM);
    int st = 0;
    for (int i = 0; i < 300; ++i) {
      if (waitpid(pid_, &st, WNOHANG) == pid_) {
        status_ = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (status_ == -2) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &st, 0);
      status_ = -1;
    }
    fclose(stdout_);
    pid_ = 0;
    return status_;
  }
  httplib::Client Client(bool with_token = true) const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(120, 0);
    if (with_token) c.set_bearer_token_auth(token);
    return c;
  }

  // The `baton serve` process itself (0 once stopped).
  pid_t pid() const { return pid_; }

  // False once the process has ended by itself; then exit_status() says how.
  bool Running() {
    int st = 0;
    if (pid_ <= 0) return false;
    if (waitpid(pid_, &st, WNOHANG) != pid_) return true;
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    how_ = WIFSIGNALED(st) ? "killed by signal " + std::to_string(WTERMSIG(st))
                           : "exited with status " + std::to_string(WEXITSTATUS(st));
    fclose(stdout_);
    pid_ = 0;
    return false;
  }
  // How the process ended ("" while it runs or after Stop).
  const std::string& exit_status() const { return how_; }

  int port = 0;
  std::string token;

 private:
  pid_t pid_ = 0;
  FILE* stdout_ = nullptr;
  int status_ = -2;
  std::string how_;
};

}  // namespace baton::testing

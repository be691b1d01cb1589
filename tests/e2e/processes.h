#pragma once

// The baton-worker processes running on this machine, read from /proc, for
// tests that kill them or check that they are gone, and what /proc says of
// one process.
#include <sys/types.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace baton::testing {

// (pid, parent pid) of every live baton-worker process.
inline std::vector<std::pair<pid_t, pid_t>> BatonWorkers() {
  std::vector<std::pair<pid_t, pid_t>> out;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string pid = entry.path().filename();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream comm(entry.path() / "comm");
    std::string name;
    std::getline(comm, name);
    if (name != "baton-worker") continue;
    std::ifstream stat(entry.path() / "stat");
    std::string skip, state, ppid;
    stat >> skip >> skip >> state >> ppid;
    if (!ppid.empty() && state != "Z" && state != "X") out.emplace_back(std::stoi(pid), std::stoi(ppid));
  }
  return out;
}

// Whether `pid` still runs (exists and is neither a zombie nor dead).
inline bool Alive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return false;
  std::string skip, state;
  stat >> skip >> skip >> state;
  return state != "Z" && state != "X";
}

// The value of `name` in the environment `pid` was started with ("" if absent).
inline std::string EnvironOf(pid_t pid, const std::string& name) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/environ");
  std::string entry;
  while (std::getline(in, entry, '\0')) {
    if (entry.rfind(name + "=", 0) == 0) return entry.substr(name.size() + 1);
  }
  return "";
}

}  // namespace baton::testing

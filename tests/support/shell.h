#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace baton::testing {

struct CmdResult {
  std::string out;     // what the command wrote to stdout
  int exit_code = -1;  // -1: it could not start or a signal ended it
};

// Runs `command` with /bin/sh and waits for it. Only stdout is captured:
// add "2>&1" (or "2>>FILE") to the command for stderr.
inline CmdResult Capture(const std::string& command) {
  CmdResult r;
  std::fflush(nullptr);  // the child must not write our buffered output again
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof(buf), p)) > 0;) r.out.append(buf, n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace baton::testing

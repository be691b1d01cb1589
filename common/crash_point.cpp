#include "common/crash_point.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

namespace baton {
namespace {

struct Target {
  std::string name;  // empty: no crash requested
  long hit = 1;      // the hit of `name` that kills
  std::atomic<long> seen{0};
};

void WriteStderr(const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(2, text.data() + done, text.size() - done);
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

Target* ReadTarget() {
  auto* target = new Target();  // lives as long as the process
  const char* env = std::getenv("BATON_CRASH_AT");
  if (env == nullptr || *env == '\0') return target;
  std::string value = env;
  const size_t colon = value.rfind(':');
  if (colon != std::string::npos) {
    const std::string count = value.substr(colon + 1);
    char* end = nullptr;
    const long n = count.empty() ? 0 : std::strtol(count.c_str(), &end, 10);
    if (n < 1 || end == nullptr || *end != '\0') {
      WriteStderr("baton: BATON_CRASH_AT='" + value + "' is not NAME or NAME:N with N >= 1\n");
      std::_Exit(2);
    }
    target->hit = n;
    value.resize(colon);
  }
  if (value.empty()) {
    WriteStderr("baton: BATON_CRASH_AT='" + std::string(env) + "' names no point\n");
    std::_Exit(2);
  }
  target->name = value;
  return target;
}

}  // namespace

void CrashPoint(const char* name) {
  static Target* const target = ReadTarget();
  if (target->name.empty() || target->name != name) return;
  const long hit = target->seen.fetch_add(1) + 1;
  if (hit != target->hit) return;
  WriteStderr("baton: BATON_CRASH_AT: killed at " + target->name + " (hit " + std::to_string(hit) + ")\n");
  ::kill(::getpid(), SIGKILL);
  std::_Exit(137);  // not reached
}

}  // namespace baton

#pragma once

// What the benchmarks share: where the real binaries built beside them are,
// and main's error handling.
#include <algorithm>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>
#include <vector>

namespace baton::bench {

// The folder this benchmark's binary is in (build/bench): the scripts it
// runs are copied there.
inline std::filesystem::path BenchDir() { return std::filesystem::read_symlink("/proc/self/exe").parent_path(); }

// The `baton` built with the benchmarks (build/api/baton; it finds
// build/stages/baton-worker itself).
inline std::string BatonBinary() { return (BenchDir().parent_path() / "api" / "baton").string(); }

// The median of `v` (0 when empty).
inline double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  if (v.empty()) return 0;
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

// `s` in single quotes for a shell command line (paths without quotes).
inline std::string Quote(const std::string& s) { return "'" + s + "'"; }

// Returns run(argc, argv); an exception is reported on stderr as "NAME: what"
// and gives exit status 1.
inline int GuardedMain(const char* name, int (*run)(int, char**), int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", name, e.what());
    return 1;
  }
}

}  // namespace baton::bench

#pragma once

// What the benchmarks share: where the real binaries built beside them are,
// and main's error handling.
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>

namespace baton::bench {

// The folder this benchmark's binary is in (build/bench): the scripts it
// runs are copied there.
inline std::filesystem::path BenchDir() { return std::filesystem::read_symlink("/proc/self/exe").parent_path(); }

// The `baton` built with the benchmarks (build/api/baton; it finds
// build/stages/baton-worker itself).
inline std::string BatonBinary() { return (BenchDir().parent_path() / "api" / "baton").string(); }

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

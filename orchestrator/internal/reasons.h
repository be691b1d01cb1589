#pragma once

#include <string>
#include <utility>
#include <vector>

namespace baton::orchestrator {

// Why trials ended, each distinct reason once with the trials it hit, in
// the order reasons first appear: {(0, "x"), (1, "x"), (2, "x"), (4, "y"),
// (5, "x")} -> "trials 0-2, 5: x; trial 4: y". An empty reason reads
// "no reason recorded". Stops, saying how many reasons it left out, before
// the text would pass `max_chars` (one reason is always given).
std::string GroupReasons(const std::vector<std::pair<int, std::string>>& trials, size_t max_chars = 600);

}  // namespace baton::orchestrator

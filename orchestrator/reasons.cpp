#include "orchestrator/internal/reasons.h"

#include <algorithm>
#include <map>

namespace baton::orchestrator {
namespace {

// "trial 4", "trials 0-2, 5".
std::string Numbers(std::vector<int> n) {
  std::sort(n.begin(), n.end());
  n.erase(std::unique(n.begin(), n.end()), n.end());
  std::string out = n.size() == 1 ? "trial " : "trials ";
  for (size_t i = 0; i < n.size();) {
    size_t j = i;
    while (j + 1 < n.size() && n[j + 1] == n[j] + 1) ++j;
    if (i > 0) out += ", ";
    out += std::to_string(n[i]);
    if (j > i) out += (j == i + 1 ? ", " : "-") + std::to_string(n[j]);
    i = j + 1;
  }
  return out;
}

}  // namespace

std::string GroupReasons(const std::vector<std::pair<int, std::string>>& trials, size_t max_chars) {
  std::vector<std::string> order;
  std::map<std::string, std::vector<int>> by_reason;
  for (const auto& [number, reason] : trials) {
    const std::string r = reason.empty() ? "no reason recorded" : reason;
    auto [it, added] = by_reason.try_emplace(r);
    if (added) order.push_back(r);
    it->second.push_back(number);
  }
  std::string out;
  for (size_t i = 0; i < order.size(); ++i) {
    const std::string part = Numbers(by_reason[order[i]]) + ": " + order[i];
    if (i > 0 && out.size() + part.size() + 2 > max_chars) {
      const size_t left = order.size() - i;
      out += "; and " + std::to_string(left) + " other reason" + (left == 1 ? "" : "s");
      break;
    }
    out += (i > 0 ? "; " : "") + part;
  }
  return out;
}

}  // namespace baton::orchestrator

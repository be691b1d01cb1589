#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace baton {

// Lower-case hex SHA-256 of `bytes` (64 characters).
std::string Sha256Hex(std::string_view bytes);

// True when `s` looks like a digest: exactly 64 lower-case hex characters.
// Anything else (paths, "..", upper case) is rejected, so a digest can never
// name a file outside the store.
bool IsDigest(std::string_view s);

// Incremental SHA-256 for data that arrives in pieces. Not thread-safe.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(std::string_view bytes);
  // Returns the hex digest; the object must not be updated afterwards.
  std::string FinishHex();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace baton

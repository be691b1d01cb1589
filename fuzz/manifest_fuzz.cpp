// libFuzzer target: any bytes as a stored checkpoint manifest. ParseManifest
// must accept or throw baton::Error; what it accepts must survive its own
// round trip (canonical bytes parse back to the same bytes). Any other
// exception, a crash, a hang or a sanitizer report is a finding.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "common/error.h"
#include "store/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::optional<baton::store::Manifest> manifest;
  try {
    manifest = baton::store::ParseManifest(std::string(reinterpret_cast<const char*>(data), size));
  } catch (const baton::Error&) {
    return 0;
  }
  const std::string bytes = baton::store::ManifestBytes(*manifest);
  if (baton::store::ManifestBytes(baton::store::ParseManifest(bytes)) != bytes) __builtin_trap();
  return 0;
}

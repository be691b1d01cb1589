#include "common/malloc_settings.h"

#include <malloc.h>

namespace baton {

void KeepFreedMemoryInHeap() {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

}  // namespace baton

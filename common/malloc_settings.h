#pragma once

namespace baton {

// Keeps freed buffers of up to 32 MiB in the heap and never trims it
// (mallopt M_MMAP_THRESHOLD 32 MiB, M_TRIM_THRESHOLD 1 GiB), so that buffers
// of the same size allocated again and again (activations, uploaded blob
// bodies, RocksDB write batches and memtables of 16 MiB chunks) are not
// page-faulted in anew each time; a fault costs ~20 us on these VMs. Call
// once, early in main, before other threads start.
void KeepFreedMemoryInHeap();

}  // namespace baton

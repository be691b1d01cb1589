#include "api/internal/cli.h"
#include "common/malloc_settings.h"

int main(int argc, char** argv) {
  // The server takes in checkpoint blobs of up to 16 MiB per chunk; without
  // this each upload's buffers are page-faulted in anew (the worker does the
  // same in stages::ConfigureWorkerProcess).
  baton::KeepFreedMemoryInHeap();
  return baton::api::RunCli(argc, argv);
}

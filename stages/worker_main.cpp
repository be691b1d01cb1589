// baton-worker: takes tasks from a Baton coordinator until the run is over.
// Usage and exit statuses: docs/worker-protocol.md.
#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>
#include <string>

#include "common/error.h"
#include "stages/coordinator_client.h"
#include "stages/worker.h"

int main(int argc, char** argv) {
  namespace stages = baton::stages;
  CLI::App app{"Runs Baton tasks (prepare, train) for a coordinator.",
               "baton-worker"};
  std::string coordinator;
  int64_t worker_id = 0;
  int threads = 1;
  app.add_option("--coordinator", coordinator,
                 "Coordinator base URL, e.g. http://127.0.0.1:8080")
      ->required();
  app.add_option("--worker-id", worker_id, "This worker's id")
      ->required()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--threads", threads,
                 "LibTorch and BLAS threads for training (default 1)")
      ->check(CLI::Range(1, 1024));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int status = app.exit(e);
    return status == 0 ? 0 : stages::kExitUsage;
  }

  const char* token = std::getenv("BATON_WORKER_TOKEN");
  if (token == nullptr || *token == '\0') {
    std::cerr << "baton-worker: BATON_WORKER_TOKEN is not set" << std::endl;
    return stages::kExitUsage;
  }
  try {
    std::unique_ptr<stages::CoordinatorClient> client =
        stages::MakeHttpCoordinatorClient(coordinator, token);
    stages::ConfigureWorkerProcess(threads);
    stages::Worker worker(*client, {worker_id, /*log=*/nullptr});
    return worker.Run();
  } catch (const baton::Error& e) {
    std::cerr << "baton-worker: " << e.what() << std::endl;
    return e.code() == baton::ErrorCode::kInvalidArgument ? stages::kExitUsage
                                                          : stages::kExitFatal;
  } catch (const std::exception& e) {
    std::cerr << "baton-worker: " << e.what() << std::endl;
    return stages::kExitFatal;
  }
}

// HttpServer::Stop right after Start must end the listener: cpp-httplib's
// stop() does nothing until its listener thread has begun, so without
// Start waiting for that, Stop's join could wait forever (a `baton resume`
// of a run with nothing left to do hung so).
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

#include "api/http_server.h"

namespace baton::api {
namespace {

TEST(HttpServerLifecycle, StopRightAfterStartReturns) {
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> finished = done->get_future();
  std::thread cycles([done] {
    for (int i = 0; i < 300; ++i) {
      HttpServer server(HttpServerOptions{});
      server.Start();
      server.Stop();
    }
    done->set_value();
  });
  if (finished.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
    cycles.detach();  // stuck in Stop's join; the process ends with the test binary
    FAIL() << "HttpServer::Stop right after Start did not return within 60 s (300 cycles)";
  }
  cycles.join();
}

}  // namespace
}  // namespace baton::api

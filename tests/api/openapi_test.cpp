// The OpenAPI document must describe exactly the routes the server
// registers: every documented (method, path) is registered and every
// registered one is documented.
#include <gtest/gtest.h>

#include <set>
#include <utility>

#include "api/internal/cli.h"
#include "api/http_server.h"
#include "api/internal/run_manager.h"
#include "common/json_util.h"
#include "tests/store/temp_dir.h"

namespace baton::api {
namespace {

TEST(OpenApi, DocumentsExactlyTheRegisteredRoutes) {
  store::testing::TempDir dir;
  StoreHandle store = OpenStore(dir.path().string());
  RunManager runs(store, {});
  HttpServer server(HttpServerOptions{});
  ApiOptions options;
  options.token = "token";
  server.MountApi(options, &store, &runs);

  std::set<std::pair<std::string, std::string>> registered;
  for (const auto& route : server.ApiRoutes()) {
    EXPECT_TRUE(registered.insert(route).second) << route.first << " " << route.second << " registered twice";
  }
  const Json doc = Json::parse(OpenApiRaw());
  EXPECT_EQ(doc["openapi"].get<std::string>().substr(0, 2), "3.");
  std::set<std::pair<std::string, std::string>> documented;
  for (const auto& [path, operations] : doc["paths"].items()) {
    for (const auto& [method, operation] : operations.items()) {
      std::string upper = method;
      for (char& c : upper) c = static_cast<char>(std::toupper(c));
      documented.insert({upper, path});
      EXPECT_TRUE(operation.contains("summary")) << method << " " << path;
      EXPECT_TRUE(operation.contains("responses")) << method << " " << path;
    }
  }
  for (const auto& r : registered) EXPECT_TRUE(documented.count(r)) << "undocumented: " << r.first << " " << r.second;
  for (const auto& d : documented) EXPECT_TRUE(registered.count(d)) << "not served: " << d.first << " " << d.second;
  EXPECT_GE(registered.size(), 15u);
}

}  // namespace
}  // namespace baton::api

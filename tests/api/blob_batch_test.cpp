// POST /internal/v1/blobs:batch: the real api::HttpServer on a spare
// loopback port over a real BlobStore, driven by the worker's HTTP client
// (stages/coordinator_client) and by raw requests for malformed bodies.
#include <gtest/gtest.h>
#include <httplib.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "api/http_server.h"
#include "common/digest.h"
#include "common/error.h"
#include "common/json_util.h"
#include "stages/coordinator_client.h"
#include "store/blob_store.h"
#include "tests/store/temp_dir.h"

namespace baton::api {
namespace {

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(n, '\0');
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<char>(rng());
  return out;
}

// One blobs:batch frame: digest, u64 little-endian length, bytes.
std::string Frame(const std::string& digest, const std::string& bytes) {
  std::string out = digest;
  for (int i = 0; i < 8; ++i) {
    out.push_back(static_cast<char>((bytes.size() >> (8 * i)) & 0xff));
  }
  return out + bytes;
}

class BlobBatchTest : public ::testing::Test {
 protected:
  BlobBatchTest() {
    blobs_ = store::BlobStore::Open(dir_.path() / "blobs");
    HttpServerOptions options;
    options.threads = 4;
    server_ = std::make_unique<HttpServer>(options);
    // The blob routes never reach the coordinator.
    server_->MountInternal(/*coordinator=*/nullptr, blobs_.get(), token_);
    server_->Start();
  }
  ~BlobBatchTest() override { server_->Stop(); }

  std::unique_ptr<stages::CoordinatorClient> Client(
      const stages::HttpClientOptions& options = {}) {
    return stages::MakeHttpCoordinatorClient(server_->url(), token_, options);
  }
  // A raw POST of `body` to blobs:batch.
  httplib::Result PostRaw(httplib::Client& http, const std::string& body) {
    http.set_bearer_token_auth(token_);
    return http.Post("/internal/v1/blobs:batch", body, "application/octet-stream");
  }

  store::testing::TempDir dir_;
  const std::string token_ = NewToken();
  std::unique_ptr<store::BlobStore> blobs_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(BlobBatchTest, WorkerBatchIsStoredAndDeduplicated) {
  const std::string weight = RandomBytes(1605632, 1), bias = RandomBytes(512, 2),
                    manifest = R"({"tensors": "..."})";
  const std::vector<stages::BlobUpload> uploads = {
      {Sha256Hex(weight), weight}, {Sha256Hex(bias), bias}, {Sha256Hex(manifest), manifest}};
  auto client = Client();
  client->PutBlobs(uploads);
  for (const auto& u : uploads) {
    EXPECT_TRUE(blobs_->Get(u.digest) == u.bytes) << u.digest;
  }
  EXPECT_TRUE(client->MissingBlobs({uploads[0].digest, uploads[2].digest}).empty());
  EXPECT_EQ(blobs_->Stats().blobs, 3u);

  // The same blobs again (and one twice) store nothing new.
  httplib::Client http(server_->url());
  httplib::Result again = PostRaw(http, Frame(Sha256Hex(bias), bias) + Frame(Sha256Hex(bias), bias) +
                                            Frame(Sha256Hex(weight), weight));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 200);
  EXPECT_EQ(ParseJson(again->body, "answer"), (Json{{"stored", 3}, {"new", 0}}));
  EXPECT_EQ(blobs_->Stats().blobs, 3u);
  EXPECT_EQ(blobs_->Stats().bytes, weight.size() + bias.size() + manifest.size());

  // An empty batch is a no-op.
  httplib::Result empty = PostRaw(http, "");
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->status, 200);
}

TEST_F(BlobBatchTest, ClientSplitsBatchesAtMaxBatchBytes) {
  stages::HttpClientOptions options;
  options.max_batch_bytes = 100000;
  auto client = Client(options);
  std::vector<std::string> bytes;
  for (int i = 0; i < 5; ++i) bytes.push_back(RandomBytes(i == 2 ? 250000 : 40000, 10 + i));
  std::vector<stages::BlobUpload> uploads;
  for (const auto& b : bytes) uploads.push_back({Sha256Hex(b), b});
  client->PutBlobs(uploads);  // 4 requests: {0, 1}, {2} alone, {3, 4}
  for (const auto& u : uploads) EXPECT_TRUE(blobs_->Get(u.digest) == u.bytes);
  EXPECT_EQ(blobs_->Stats().blobs, 5u);
}

TEST_F(BlobBatchTest, BlobThatDoesNotHashToItsDigestRejectsTheWholeBatch) {
  const std::string good = RandomBytes(70000, 3), other = "other";
  const std::string wrong = Sha256Hex("what the worker meant to send");
  auto client = Client();
  try {
    client->PutBlobs({{Sha256Hex(good), good}, {Sha256Hex(other), other}, {wrong, "tampered"}});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    const std::string message = e.what();
    EXPECT_NE(message.find("400"), std::string::npos) << message;
    EXPECT_NE(message.find(wrong), std::string::npos) << message;
    EXPECT_NE(message.find("hash to"), std::string::npos) << message;
    EXPECT_NE(message.find("none of the 3 blobs was stored"), std::string::npos) << message;
  }
  EXPECT_FALSE(blobs_->Has(Sha256Hex(good)));
  EXPECT_FALSE(blobs_->Has(Sha256Hex(other)));
  EXPECT_EQ(blobs_->Stats().blobs, 0u);
}

TEST_F(BlobBatchTest, MalformedOrTruncatedBodiesAreRejected) {
  const std::string a = RandomBytes(5000, 4), b = RandomBytes(9000, 5);
  const std::string whole = Frame(Sha256Hex(a), a) + Frame(Sha256Hex(b), b);
  struct Case {
    std::string body, expect;
  };
  const std::vector<Case> cases = {
      {whole.substr(0, whole.size() - 1), "declares 9000 bytes, only 8999 left"},
      {whole.substr(0, 72 + 5000 + 30), "needs a 72-byte header"},
      {whole + "x", "needs a 72-byte header (digest + length), only 1 bytes left"},
      {"ZZ" + whole.substr(2), "does not start with a SHA-256 digest"},
  };
  httplib::Client http(server_->url());
  for (const Case& c : cases) {
    httplib::Result answer = PostRaw(http, c.body);
    ASSERT_TRUE(answer);
    EXPECT_EQ(answer->status, 400) << c.expect;
    const Json body = ParseJson(answer->body, "answer");
    EXPECT_EQ(body.at("error_code"), "INVALID_PARAMETER_VALUE");
    EXPECT_NE(body.at("message").get<std::string>().find(c.expect), std::string::npos)
        << body.at("message");
  }
  EXPECT_EQ(blobs_->Stats().blobs, 0u);

  // The keep-alive connection still serves a good batch afterwards.
  httplib::Result good = PostRaw(http, whole);
  ASSERT_TRUE(good);
  EXPECT_EQ(good->status, 200);
  EXPECT_EQ(blobs_->Stats().blobs, 2u);
}

TEST_F(BlobBatchTest, WrongTokenIsRefusedAndStoresNothing) {
  const std::string a = RandomBytes(5000, 6);
  httplib::Client http(server_->url());
  http.set_bearer_token_auth("not the token");
  httplib::Result refused = http.Post("/internal/v1/blobs:batch", Frame(Sha256Hex(a), a),
                                      "application/octet-stream");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 401);
  // The refusal came before the body was read, and closed the connection:
  // the client's next request, with the right token, is served.
  httplib::Result good = PostRaw(http, Frame(Sha256Hex(a), a));
  ASSERT_TRUE(good);
  EXPECT_EQ(good->status, 200);
  EXPECT_EQ(blobs_->Stats().blobs, 1u);
}

}  // namespace
}  // namespace baton::api

// `baton serve`: the REST API, the web UI's files and runs triggered over
// HTTP, until SIGINT or SIGTERM.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "api/internal/cli.h"
#include "api/internal/cli_run.h"
#include "api/http_server.h"
#include "api/internal/run_manager.h"
#include "common/error.h"
#include "common/vocabulary.h"

namespace baton::api {
namespace {

struct ServeOptions {
  std::string host = "127.0.0.1";  // loopback unless asked otherwise
  int port = 8080;                  // 0 = any free port
  bool public_read = false;         // reads without the token
  int max_runs = 2;                 // runs executing at once
  WorkerOptions workers;            // where each run's workers run (as `baton run`)
  int threads = 16;                 // request threads (each event stream holds one)
  size_t max_body_bytes = 16u << 20;  // largest request body (413 above)
  std::string web_dir;              // a folder to serve the web UI from; "" = the files built into baton
  std::vector<std::string> data_roots;  // empty: the store and /usr/share/datasets
  bool allow_commands = false;
  double lease_seconds = 30;        // as RunOptions::lease_seconds, for every run it executes
  orchestrator::PipelineLimits limits;  // of the pipelines sent over HTTP (--max-model-bytes)
};


// The API token: read from <store>/api-token, or made and stored there with
// mode 0600 on first start (then *created is true). A token file others can
// read is refused, as ssh refuses such keys.
std::string LoadOrCreateApiToken(const std::string& store_dir, bool* created) {
  const std::string path = store_dir + "/api-token";
  *created = false;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) {
    const std::string token = NewToken();
    const bool ok = ::write(fd, token.data(), token.size()) == static_cast<ssize_t>(token.size()) && ::fsync(fd) == 0;
    ::close(fd);
    if (!ok) {
      ::unlink(path.c_str());
      throw Error(ErrorCode::kUnavailable, "cannot write the API token to " + path + ": " + std::strerror(errno));
    }
    *created = true;
    return token;
  }
  if (errno != EEXIST) {
    throw Error(ErrorCode::kUnavailable, "cannot create the API token file " + path + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    throw Error(ErrorCode::kUnavailable, "cannot read the API token file " + path + ": " + std::strerror(errno));
  }
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    throw Error(ErrorCode::kInvalidArgument, "the API token file " + path + " has mode " + mode +
                                                 ": others may read it; run `chmod 600 " + path + "` (or delete it for a new token)");
  }
  std::ifstream in(path);
  std::string token;
  std::getline(in, token);
  if (token.size() < 32) {
    throw Error(ErrorCode::kInvalidArgument, "the API token file " + path + " holds no token (delete it for a new one)");
  }
  return token;
}

int CmdServe(const std::string& store_dir, const ServeOptions& options) {
  // Block the stop signals before any thread starts, so that every thread
  // inherits the mask and only sigwait below receives them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  ::signal(SIGPIPE, SIG_IGN);  // a client that hangs up mid-stream

  StoreHandle store = OpenStore(store_dir);
  bool created = false;
  ApiOptions api;
  api.token = LoadOrCreateApiToken(store_dir, &created);
  api.public_read = options.public_read;
  api.web_dir = options.web_dir;
  api.data_roots = options.data_roots;
  api.allow_commands = options.allow_commands;
  api.limits = options.limits;
  if (api.data_roots.empty()) api.data_roots = {store_dir, "/usr/share/datasets"};
  if (!api.web_dir.empty() && !std::filesystem::is_regular_file(std::filesystem::path(api.web_dir) / "index.html")) {
    throw Error(ErrorCode::kInvalidArgument, "--web-dir " + api.web_dir +
                                                 ": no index.html there (build one with: node web/build.mjs " +
                                                 api.web_dir + " --dev)");
  }

  RunManagerOptions run_options;
  run_options.max_runs = options.max_runs;
  run_options.workers = options.workers;
  run_options.lease = std::chrono::milliseconds(static_cast<int64_t>(options.lease_seconds * 1000));
  RunManager runs(store, run_options);
  // This process holds the store, so a run still pending or running was
  // cut short (a killed `baton run` or server): it continues; so does one
  // that a full disk interrupted.
  for (const auto& run : store.db->ListRuns(1 << 30)) {
    if (RunFinished(run.status)) continue;
    std::fprintf(stderr, "resuming interrupted run %s (%s)\n", run.id.c_str(), run.name.c_str());
    runs.Resume(run.id);
  }

  HttpServer server(HttpServerOptions::ForApi(options.host, options.port, options.threads, options.max_body_bytes));
  server.MountApi(api, &store, &runs);
  server.Start();
  runs.SetResumeCommand("baton --server " + server.url() + " resume");
  std::printf("listening on %s\n", server.url().c_str());
  std::fflush(stdout);
  if (created) {
    std::fprintf(stderr,
                 "API token (printed this once; kept in %s/api-token, mode 0600): %s\n"
                 "mutations need the header \"Authorization: Bearer <token>\"%s\n",
                 store_dir.c_str(), api.token.c_str(), options.public_read ? "" : ", reads too (see --public-read)");
  }
  std::fprintf(stderr, "store %s, up to %d runs at once; stop with Ctrl-C\n", store_dir.c_str(), options.max_runs);

  int signal_number = 0;
  sigwait(&stop, &signal_number);
  std::fprintf(stderr, "stopping (%s): cancelling %d active run(s)\n", strsignal(signal_number), runs.Active());
  server.Stop();
  return kExitOk;  // ~RunManager cancels what still runs and waits for its workers
}

}  // namespace

void AddServeCommand(CLI::App& app, const GlobalOptions& g, CliAction* action) {
  auto options = std::make_shared<ServeOptions>();
  auto* serve = app.add_subcommand("serve", "serve the REST API (/api/v1), the web UI and runs triggered over HTTP");
  serve->add_option("--host", options->host, "address to listen on (default 127.0.0.1)");
  serve->add_option("--port", options->port, "port (default 8080; 0 = any free one)");
  serve->add_flag("--public-read", options->public_read, "let reads through without the token");
  serve->add_option("--max-runs", options->max_runs, "runs executing at once (default 2)")->check(CLI::PositiveNumber);
  AddWorkerOptions(serve, &options->workers);
  serve->add_option("--lease-seconds", options->lease_seconds, kLeaseHelp)->check(CLI::Range(0.1, 86400.0));
  serve->add_option("--web-dir", options->web_dir,
                    "serve the web UI from this folder (e.g. node web/build.mjs DIR --dev) instead of the files built "
                    "into baton; for working on the UI");
  serve->add_option("--data-root", options->data_roots,
                    "folder that pipelines sent over HTTP may read data from; repeatable (default: the store and "
                    "/usr/share/datasets)");
  serve->add_flag("--allow-commands", options->allow_commands,
                  "run command stages of pipelines sent over HTTP (they run any program as this server's user, so "
                  "only where everyone with the API token may do that)");
  serve->callback([&g, options, action] {
    *action = [&g, options] {
      RefuseServer(g, "serve");
      if (options->workers.access.port != 0 && options->max_runs > 1) {
        // Each run executing has its own worker endpoint.
        throw Error(ErrorCode::kInvalidArgument,
                    "--worker-port " + std::to_string(options->workers.access.port) + " is one port, but up to " +
                        std::to_string(options->max_runs) +
                        " runs execute at once, each with its own worker endpoint: add --max-runs 1, or leave "
                        "--worker-port out");
      }
      options->limits = g.limits;
      return CmdServe(g.store_dir, *options);
    };
  });
}

}  // namespace baton::api

#include "stages/command_task.h"

#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <system_error>
#include <thread>
#include <vector>

#include <boost/process.hpp>
#include <boost/process/extend.hpp>

#include "common/digest.h"
#include "common/error.h"
#include "common/vocabulary.h"
#include "maintenance/safetensors_header.h"
#include "store/checkpoint.h"
#include "store/file_artifact.h"

namespace baton::stages {
namespace {

namespace bp = boost::process;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

Error TaskError(const std::string& key, const std::string& what) {
  return Error(ErrorCode::kInvalidArgument, "command task field \"" + key + "\" " + what);
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void WriteFile(const fs::path& path, const std::string& bytes) {
  std::error_code ec;
  if (path.has_parent_path()) fs::create_directories(path.parent_path(), ec);
  const fs::path tmp = path.string() + ".baton-tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out.flush()) throw Error(ErrorCode::kInternal, path.string() + ": cannot be written");
  }
  fs::rename(tmp, path, ec);
  if (ec) throw Error(ErrorCode::kInternal, path.string() + ": cannot be written: " + ec.message());
}

// The program's path: as given when it names a path ("./x", "/usr/bin/x"),
// else the first executable of that name on PATH.
std::string FindProgram(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t at = 0;
  while (at <= dirs.size()) {
    size_t end = dirs.find(':', at);
    if (end == std::string::npos) end = dirs.size();
    const fs::path candidate = fs::path(end > at ? dirs.substr(at, end - at) : ".") / name;
    if (::access(candidate.c_str(), X_OK) == 0 && !fs::is_directory(candidate)) return candidate.string();
    at = end + 1;
  }
  throw Error(ErrorCode::kNotFound, "program \"" + name + "\" is not on PATH (" + dirs + ")");
}

class Runner {
 public:
  Runner(CoordinatorClient& client, int64_t id, const Json& task, const CommandTaskOptions& options)
      : client_(client), id_(id), task_(task), options_(options) {}

  void Run() {
    const fs::path workdir = StringField("workdir");
    if (!fs::is_directory(workdir)) {
      throw Error(ErrorCode::kNotFound, "the run's working directory " + workdir.string() + " does not exist here");
    }
    const Json& cmd = task_.at("cmd");
    if (!cmd.is_array() || cmd.empty()) throw TaskError("cmd", "must be a non-empty array of strings");
    std::vector<std::string> args;
    for (const Json& a : cmd) args.push_back(a.get<std::string>());
    WriteCheckpoints(workdir);

    const fs::path scratch = fs::temp_directory_path() /
                             ("baton-command-" + std::to_string(::getpid()) + "-" + std::to_string(id_));
    fs::create_directories(scratch);
    struct Cleanup {
      fs::path dir;
      ~Cleanup() {
        std::error_code ec;
        fs::remove_all(dir, ec);
      }
    } cleanup{scratch};
    const fs::path out_path = scratch / "stdout", err_path = scratch / "stderr", params_path = scratch / "params.json";
    WriteFile(params_path, task_.value("params", Json::object()).dump());

    bp::environment env = boost::this_process::environment();
    const Json extra = task_.value("env", Json::object());
    for (const auto& [k, v] : extra.items()) env[k] = v.get<std::string>();
    env["BATON_PARAMS"] = params_path.string();
    env["BATON_STAGE"] = task_.value("stage", "");

    // The program is looked up before the working directory changes.
    std::string program = args[0];
    if (program.find('/') == std::string::npos) program = FindProgram(program);
    args.erase(args.begin());
    Log("running " + cmd.dump() + " in " + workdir.string());
    const double timeout = task_.value("timeout_seconds", 0.0);
    const auto started = Clock::now();
    std::error_code ec;
    bp::child child;
    try {
      child = bp::child(program, bp::args(args), env, bp::start_dir = workdir.string(), bp::std_in < bp::null,
                        bp::std_out > out_path.string(), bp::std_err > err_path.string(),
                        bp::extend::on_exec_setup = [](auto&) { ::setpgid(0, 0); });
    } catch (const bp::process_error& e) {
      throw Error(ErrorCode::kInvalidArgument, "cannot start " + cmd[0].dump() + ": " + e.what());
    }
    const pid_t group = child.id();
    ::setpgid(group, group);  // also here, so that a kill right away reaches the group
    bool timed_out = false;
    try {
      while (child.running(ec)) {
        if (timeout > 0 && std::chrono::duration<double>(Clock::now() - started).count() >= timeout) {
          timed_out = true;
          KillGroup(child, group);
          break;
        }
        if (options_.check_lost) options_.check_lost();
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    } catch (...) {
      KillGroup(child, group);
      throw;
    }
    if (!timed_out) child.wait(ec);
    const int status = child.native_exit_code();
    const double seconds = std::chrono::duration<double>(Clock::now() - started).count();

    const std::string out_bytes = ReadFile(out_path), err_bytes = ReadFile(err_path);
    const Json logs = {{"stdout", PutLog(out_bytes)}, {"stderr", PutLog(err_bytes)}};
    std::string reason;
    if (timed_out) {
      std::ostringstream seconds_text;
      seconds_text << timeout;  // 1, not 1.0
      reason = "timed out after " + seconds_text.str() + " s (timeout_seconds); its process group was killed";
    } else if (WIFSIGNALED(status)) {
      reason = "killed by signal " + std::to_string(WTERMSIG(status));
    } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
      reason = "exited with status " + std::to_string(WEXITSTATUS(status));
    }
    Json body;
    if (reason.empty()) {
      try {
        body = {{"output", UploadOuts(workdir)}};
      } catch (const Error& e) {
        if (e.code() != ErrorCode::kNotFound) throw;
        reason = e.what();
      }
    }
    if (!reason.empty()) {
      const std::string tail = TailLines(err_bytes, options_.stderr_lines, 4000);
      if (!tail.empty()) reason += "; stderr ends with:\n" + tail;
      body = {{"status", Name(TrialStatus::kFailed)}, {"reason", reason}};
    }
    body["logs"] = logs;
    body["seconds"] = seconds;
    Log("command " + std::string(reason.empty() ? "succeeded" : "failed: " + reason));
    if (reason.empty()) {
      client_.CompleteWith(id_, body);
    } else {
      client_.FailWith(id_, body);
    }
  }

 private:
  void Log(const std::string& line) const {
    if (options_.log) options_.log("task " + std::to_string(id_) + ": " + line);
  }

  std::string StringField(const std::string& key) const {
    if (!task_.contains(key) || !task_[key].is_string()) throw TaskError(key, "must be a string");
    return task_[key].get<std::string>();
  }

  // SIGTERM to the whole group, SIGKILL after the grace period.
  void KillGroup(bp::child& child, pid_t group) const {
    ::kill(-group, SIGTERM);
    const auto deadline = Clock::now() + std::chrono::duration<double>(options_.kill_grace_seconds);
    std::error_code ec;
    while (child.running(ec) && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ::kill(-group, SIGKILL);
    child.wait(ec);
  }

  std::string Fetch(const std::string& digest) {
    if (!IsDigest(digest)) throw TaskError("checkpoints", "names \"" + digest + "\", which is not a blob digest");
    std::string bytes = client_.GetBlob(digest);
    if (Sha256Hex(bytes) != digest) {
      throw Error(ErrorCode::kCorrupt, "blob " + digest + " arrived with different content");
    }
    return bytes;
  }

  // Each checkpoint dependency as a safetensors file: the header, then each
  // tensor's bytes in manifest order.
  void WriteCheckpoints(const fs::path& workdir) {
    for (const Json& c : task_.value("checkpoints", Json::array())) {
      const std::string digest = c.at("checkpoint").get<std::string>();
      const store::Manifest manifest = store::ParseManifest(Fetch(digest));
      std::string bytes = maintenance::SafetensorsHeader(manifest, digest);
      for (const store::TensorEntry& t : manifest.tensors) bytes += Fetch(t.blob);
      const fs::path path = workdir / c.at("path").get<std::string>();
      WriteFile(path, bytes);
      Log("checkpoint " + digest + " written to " + path.string());
    }
  }

  // Uploads the blobs the store lacks, `last` (if any) after all others.
  void Upload(const std::map<std::string, std::string>& blobs, const std::string& last_digest,
              const std::string& last) {
    std::vector<std::string> digests;
    for (const auto& [digest, bytes] : blobs) digests.push_back(digest);
    if (!last.empty()) digests.push_back(last_digest);
    std::vector<BlobUpload> uploads;
    bool last_missing = false;
    for (const std::string& digest : client_.MissingBlobs(digests)) {
      auto it = blobs.find(digest);
      if (it != blobs.end()) {
        uploads.push_back(BlobUpload{digest, it->second});
      } else if (digest == last_digest) {
        last_missing = true;
      }
    }
    if (last_missing) uploads.push_back(BlobUpload{last_digest, last});
    if (!uploads.empty()) client_.PutBlobs(uploads);
  }

  std::string PutLog(const std::string& bytes) {
    const std::string digest = Sha256Hex(bytes);
    Upload({{digest, bytes}}, "", "");
    return digest;
  }

  // Every out, as one "files" manifest named by paths relative to the
  // working directory. Error(kNotFound) for an out the command did not write.
  std::string UploadOuts(const fs::path& workdir) {
    store::FileBlobs all;
    all.manifest.kind = store::kFilesKind;
    Json outs = Json::array();
    for (const Json& o : task_.value("outs", Json::array())) {
      const std::string out = fs::path(o.get<std::string>()).lexically_normal().generic_string();
      std::string rel = out;
      while (rel.size() > 1 && rel.back() == '/') rel.pop_back();
      const fs::path path = workdir / rel;
      std::error_code ec;
      if (!fs::exists(path, ec)) {
        throw Error(ErrorCode::kNotFound, "the command exited with status 0 but did not write its out " + out);
      }
      store::FileBlobs one = store::ReadFileArtifact(path.string());
      const bool single = one.manifest.meta.value("layout", "") == "file";
      for (store::TensorEntry e : one.manifest.tensors) {
        e.name = single ? rel : rel + "/" + e.name;
        all.manifest.tensors.push_back(std::move(e));
      }
      all.blobs.merge(one.blobs);
      outs.push_back(rel);
    }
    all.manifest.meta = {{"layout", "folder"}, {"outs", outs}, {"stage", task_.value("stage", "")}};
    const std::string manifest_bytes = store::ManifestBytes(all.manifest);  // sorts the entries
    const std::string digest = Sha256Hex(manifest_bytes);
    Upload(all.blobs, digest, manifest_bytes);
    Log("outputs " + digest + " (" + std::to_string(all.manifest.tensors.size()) + " files)");
    return digest;
  }

  CoordinatorClient& client_;
  const int64_t id_;
  const Json& task_;
  const CommandTaskOptions& options_;
};

}  // namespace

std::string TailLines(const std::string& text, int lines, size_t max_bytes) {
  size_t end = text.size();
  while (end > 0 && (text[end - 1] == '\n' || text[end - 1] == '\r')) --end;
  size_t begin = end;
  for (int n = 0; n < lines && begin > 0; ++n) {
    const size_t nl = text.rfind('\n', begin - 1);  // the line end before this line
    if (nl == std::string::npos) {
      begin = 0;
      break;
    }
    begin = nl;
  }
  if (begin < end && text[begin] == '\n') ++begin;
  if (end - begin > max_bytes) begin = end - max_bytes;
  return text.substr(begin, end - begin);
}

void RunCommandTask(CoordinatorClient& client, int64_t id, const Json& task, const CommandTaskOptions& options) {
  Runner(client, id, task, options).Run();
}

}  // namespace baton::stages

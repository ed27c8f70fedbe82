#include "harness/sweep_peer.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <limits>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace fk {
namespace {

bool ReadLine(FILE* f, std::string* line) {
  line->clear();
  int c;
  while ((c = std::fgetc(f)) != EOF) {
    if (c == '\n') return true;
    line->push_back(static_cast<char>(c));
  }
  return !line->empty();
}

double NumberOrNaN(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return std::numeric_limits<double>::quiet_NaN();
  return it->get<double>();
}

}  // namespace

std::string DefaultGgmlPeerPath() {
  std::string cache;
  if (const char* c = std::getenv("FK_CACHE"); c != nullptr && *c != '\0') {
    cache = c;
  } else if (const char* x = std::getenv("XDG_CACHE_HOME"); x != nullptr && *x != '\0') {
    cache = std::string(x) + "/fused-kernels";
  } else {
    const char* home = std::getenv("HOME");
    cache = std::string(home != nullptr ? home : "/root") + "/.cache/fused-kernels";
  }
  return cache + "/ggml_peer/mulmat_bench";
}

std::unique_ptr<GgmlPeer> GgmlPeer::Start(const std::string& path, std::string* why_not) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0 || !(st.st_mode & S_IXUSR)) {
    *why_not = absl::StrCat(path, " not found (tools/setup_ggml builds it, ~10 min once)");
    return nullptr;
  }
  // A peer that dies must be an error of the next Run(), not a SIGPIPE that ends us.
  signal(SIGPIPE, SIG_IGN);
  int in_pipe[2], out_pipe[2];
  if (pipe(in_pipe) != 0) {
    *why_not = "pipe() failed";
    return nullptr;
  }
  if (pipe(out_pipe) != 0) {
    close(in_pipe[0]);
    close(in_pipe[1]);
    *why_not = "pipe() failed";
    return nullptr;
  }
  std::unique_ptr<GgmlPeer> peer(new GgmlPeer());
  char tmpl[] = "/tmp/sweep-ggml-stderr-XXXXXX";
  const int err_fd = mkstemp(tmpl);
  if (err_fd >= 0) peer->stderr_path_ = tmpl;
  const pid_t pid = fork();
  if (pid < 0) {
    *why_not = "fork() failed";
    return nullptr;
  }
  if (pid == 0) {
    // Own process group: Ctrl-C in the terminal stops the sweep, which then ends the peer.
    setpgid(0, 0);
    dup2(in_pipe[0], 0);
    dup2(out_pipe[1], 1);
    if (err_fd >= 0) dup2(err_fd, 2);
    close(in_pipe[0]);
    close(in_pipe[1]);
    close(out_pipe[0]);
    close(out_pipe[1]);
    execl(path.c_str(), path.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  if (err_fd >= 0) close(err_fd);
  close(in_pipe[0]);
  close(out_pipe[1]);
  fcntl(in_pipe[1], F_SETFD, FD_CLOEXEC);
  fcntl(out_pipe[0], F_SETFD, FD_CLOEXEC);
  peer->pid_ = pid;
  peer->to_ = fdopen(in_pipe[1], "w");
  peer->from_ = fdopen(out_pipe[0], "r");
  peer->alive_ = true;
  std::string line;
  if (!ReadLine(peer->from_, &line)) {
    *why_not = absl::StrCat(path, " exited at start (see ", peer->stderr_path_, ")");
    return nullptr;
  }
  nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.contains("protocol") || j["protocol"] != kProtocol) {
    *why_not = absl::StrCat(path, " is outdated (protocol ",
                            j.is_discarded() || !j.contains("protocol") ? std::string("1")
                                                                         : j["protocol"].dump(),
                            ", want ", kProtocol, "): re-run tools/setup_ggml");
    return nullptr;
  }
  peer->version_ = absl::StrCat(j.value("ggml_version", "?"), " (commit ",
                                j.value("ggml_commit", "?"), ")");
  return peer;
}

GgmlPeer::~GgmlPeer() {
  if (to_ != nullptr) std::fclose(to_);  // EOF on its stdin: it exits
  if (from_ != nullptr) std::fclose(from_);
  if (pid_ > 0) {
    int status = 0;
    waitpid(pid_, &status, 0);
  }
  if (!stderr_path_.empty()) unlink(stderr_path_.c_str());
}

absl::StatusOr<GgmlResult> GgmlPeer::Run(const char* type, int64_t n, int64_t k, int64_t m,
                                         int threads, int reps, double min_time,
                                         double cold_bytes, int check_cols) {
  if (!alive_) return absl::UnavailableError("the ggml peer has exited");
  std::fprintf(to_, "%s %lld %lld %lld %d %d %.6f %.0f %d\n", type, static_cast<long long>(n),
               static_cast<long long>(k), static_cast<long long>(m), threads, reps, min_time,
               cold_bytes, check_cols);
  std::string line;
  if (std::fflush(to_) != 0 || !ReadLine(from_, &line)) {
    alive_ = false;
    return absl::UnavailableError(
        absl::StrCat("the ggml peer exited (its stderr: ", stderr_path_, ")"));
  }
  nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded()) {
    return absl::InternalError(absl::StrCat("ggml peer printed unparsable output: ", line));
  }
  if (j.contains("error")) {
    return absl::FailedPreconditionError(absl::StrCat("ggml: ", j["error"].get<std::string>()));
  }
  GgmlResult r;
  r.layout = j.value("layout", "?");
  r.weight_bytes = j.value("weight_bytes", int64_t{0});
  r.copies = j.value("copies", int64_t{0});
  for (const auto& t : j["times_s"]) r.times_s.push_back(t.get<double>());
  r.max_abs_err = NumberOrNaN(j, "max_abs_err");
  r.max_rel_err = NumberOrNaN(j, "max_rel_err");
  r.checked_cols = j.value("checked_cols", 0);
  if (r.times_s.empty()) return absl::InternalError("ggml peer returned no timings");
  return r;
}

}  // namespace fk

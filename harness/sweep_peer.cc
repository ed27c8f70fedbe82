#include "harness/sweep_peer.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
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

// CPU time (user + system, in clock ticks) process `pid` has used, all its threads; -1 when
// /proc does not say.
long long ProcessTicks(pid_t pid) {
  std::ifstream f(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat;
  if (!std::getline(f, stat)) return -1;
  // Fields after the command name (in parentheses, may hold spaces): state is field 3,
  // utime and stime fields 14 and 15.
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(stat.substr(close + 1));
  std::string field;
  long long utime = -1, stime = -1;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::atoll(field.c_str());
    if (i == 15) stime = std::atoll(field.c_str());
  }
  return utime < 0 || stime < 0 ? -1 : utime + stime;
}

// Waits (up to max_s) until process `pid` uses under half a core over a 40 ms window.
// ggml's OpenMP threads spin for a while after a call (libgomp's default wait policy), and
// the peer frees its weight copies after printing its result: on 2 cores that took the
// core our next case's second thread needed (the sweep's first 2-thread Q2_K case, right
// after ggml's CPU_REPACK case, ran half its repetitions at 1-thread speed).
void WaitUntilIdle(pid_t pid, double max_s) {
  const long tick_hz = sysconf(_SC_CLK_TCK);
  if (pid <= 0 || tick_hz <= 0) return;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(max_s);
  constexpr double kWindowS = 0.04;
  long long before = ProcessTicks(pid);
  while (before >= 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::duration<double>(kWindowS));
    const long long after = ProcessTicks(pid);
    if (after < 0) return;
    if (static_cast<double>(after - before) / static_cast<double>(tick_hz) < 0.5 * kWindowS) return;
    before = after;
  }
}

double NumberOrNaN(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return std::numeric_limits<double>::quiet_NaN();
  return it->get<double>();
}

std::string SignalName(int sig) {
  switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGILL: return "SIGILL";
    case SIGABRT: return "SIGABRT";
    case SIGFPE: return "SIGFPE";
    case SIGKILL: return "SIGKILL";
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGTRAP: return "SIGTRAP";
    case SIGSYS: return "SIGSYS";
    case SIGPIPE: return "SIGPIPE";
  }
  return absl::StrCat("signal ", sig);
}

// The last non-empty line of a file, at most 200 characters ("" if none).
std::string LastLine(const std::string& path) {
  std::ifstream f(path);
  std::string line, last;
  while (std::getline(f, line)) {
    const std::string s(absl::StripAsciiWhitespace(line));
    if (!s.empty()) last = s;
  }
  if (last.size() > 200) last = last.substr(0, 197) + "...";
  return last;
}

// Waits for `pid` for up to `seconds`, then kills it; returns its waitpid() status.
int ReapChild(pid_t pid, double seconds) {
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
  while (true) {
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0) return 0;
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return status;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

std::string FormatDuration(double s) {
  if (s < 60) return absl::StrFormat("%.0fs", s);
  return absl::StrFormat("%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
}

std::string ShellQuote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'') {
      q += "'\\''";
    } else {
      q += c;
    }
  }
  return q + "'";
}

bool IsExecutable(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(path.c_str(), X_OK) == 0;
}

}  // namespace

std::string GgmlCrash::ToString() const {
  std::string s = absl::StrCat(layout.empty() ? "(no layout yet)" : layout, ": ", how);
  if (!stderr_tail.empty()) absl::StrAppend(&s, " (stderr: ", stderr_tail, ")");
  return s;
}

std::string CrashesToString(const std::vector<GgmlCrash>& crashes) {
  std::vector<std::string> parts;
  for (const GgmlCrash& c : crashes) parts.push_back(c.ToString());
  return absl::StrJoin(parts, "; ");
}

std::string DescribeExit(int wait_status) {
  if (WIFSIGNALED(wait_status)) return absl::StrCat("killed by ", SignalName(WTERMSIG(wait_status)));
  if (WIFEXITED(wait_status)) return absl::StrCat("exited with code ", WEXITSTATUS(wait_status));
  return "ended";
}

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
  if (!IsExecutable(path)) {
    *why_not = absl::StrCat(path, " not found (tools/setup_ggml builds it)");
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
    signal(SIGPIPE, SIG_DFL);
    setenv("GGML_NO_BACKTRACE", "1", 1);  // on an abort, no gdb attaching to print a trace
    const std::string protocol = absl::StrCat("--protocol=", kProtocol);
    execl(path.c_str(), path.c_str(), protocol.c_str(), static_cast<char*>(nullptr));
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
    peer->Died("");
    *why_not = absl::StrCat(path, " ", peer->crash_.how, " at start",
                            peer->crash_.stderr_tail.empty() ? "" : ": ",
                            peer->crash_.stderr_tail);
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
  if (auto it = j.find("extra_bufts"); it != j.end() && it->is_array()) {
    for (const auto& b : *it) {
      if (b.is_string()) peer->extra_bufts_.push_back(b.get<std::string>());
    }
  }
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

void GgmlPeer::Died(const std::string& layout) {
  alive_ = false;
  if (to_ != nullptr) {
    std::fclose(to_);  // a child that only closed its stdout gets EOF too
    to_ = nullptr;
  }
  crash_ = GgmlCrash();
  crash_.layout = layout;
  if (pid_ > 0) {
    crash_.how = DescribeExit(ReapChild(pid_, 5.0));
    pid_ = -1;
  } else {
    crash_.how = "ended";
  }
  if (!stderr_path_.empty()) crash_.stderr_tail = LastLine(stderr_path_);
}

absl::StatusOr<GgmlResult> GgmlPeer::Run(const GgmlCase& c, const std::string& layout) {
  if (!alive_) return absl::UnavailableError("the ggml peer has exited");
  std::fprintf(to_, "%s %lld %lld %lld %d %d %.6f %.0f %d %s %.6f\n", c.type.c_str(),
               static_cast<long long>(c.n), static_cast<long long>(c.k),
               static_cast<long long>(c.m), c.threads, c.reps, c.min_time, c.cold_bytes,
               c.check_cols, layout.c_str(), c.warmup_time);
  std::string line, started;
  nlohmann::json j;
  const bool sent = std::fflush(to_) == 0;
  while (true) {
    if (!sent || !ReadLine(from_, &line)) {
      Died(started);
      return absl::UnavailableError(absl::StrCat("the ggml peer died: ", crash_.ToString()));
    }
    j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded()) {
      return absl::InternalError(absl::StrCat("ggml peer printed unparsable output: ", line));
    }
    if (!j.value("start", false)) break;
    started = j.value("layout", "?");
  }
  if (j.contains("error")) {
    return absl::FailedPreconditionError(absl::StrCat("ggml: ", j["error"].get<std::string>()));
  }
  GgmlResult r;
  r.layout = j.value("layout", "?");
  r.weight_bytes = j.value("weight_bytes", int64_t{0});
  r.copies = j.value("copies", int64_t{0});
  r.huge_pct = NumberOrNaN(j, "huge_pct");
  if (auto it = j.find("times_s"); it != j.end() && it->is_array()) {
    for (const auto& t : *it) {
      if (t.is_number()) r.times_s.push_back(t.get<double>());
    }
  }
  r.max_abs_err = NumberOrNaN(j, "max_abs_err");
  r.max_rel_err = NumberOrNaN(j, "max_rel_err");
  r.checked_cols = j.value("checked_cols", 0);
  if (r.times_s.empty()) return absl::InternalError("ggml peer returned no timings");
  WaitUntilIdle(pid_, 2.0);
  return r;
}

std::string NextGgmlLayout(const std::vector<std::string>& extra_bufts, const std::string& crashed) {
  if (crashed.empty() || crashed == "plain") return "";
  auto it = std::find(extra_bufts.begin(), extra_bufts.end(), crashed);
  if (it != extra_bufts.end() && it + 1 != extra_bufts.end()) return *(it + 1);
  return "plain";
}

std::unique_ptr<GgmlSupervisor> GgmlSupervisor::Start(const std::string& path,
                                                      std::string* why_not) {
  std::unique_ptr<GgmlPeer> peer = GgmlPeer::Start(path, why_not);
  if (peer == nullptr) return nullptr;
  std::unique_ptr<GgmlSupervisor> s(new GgmlSupervisor());
  s->path_ = path;
  s->version_ = peer->version();
  s->extra_bufts_ = peer->extra_bufts();
  s->peer_ = std::move(peer);
  return s;
}

absl::StatusOr<GgmlResult> GgmlSupervisor::Run(const GgmlCase& c) {
  std::vector<GgmlCrash> crashes;
  std::string layout = "auto";
  // Every retry moves to a later layout; the bound only guards against a peer that does not
  // run the layout it is asked for.
  const size_t max_attempts = extra_bufts_.size() + 2;
  for (size_t attempt = 0; attempt < max_attempts; ++attempt) {
    if (peer_ == nullptr) {
      std::string why;
      peer_ = GgmlPeer::Start(path_, &why);
      if (peer_ == nullptr) {
        return absl::UnavailableError(absl::StrCat(
            "the ggml peer could not be restarted: ", why,
            crashes.empty() ? "" : absl::StrCat(" (after: ", CrashesToString(crashes), ")")));
      }
      ++restarts_;
    }
    absl::StatusOr<GgmlResult> r = peer_->Run(c, layout);
    if (r.ok()) {
      r->crashes = crashes;
      return r;
    }
    if (peer_->alive()) return r.status();  // ggml rejected the case: no crash
    crashes.push_back(peer_->crash());
    peer_.reset();  // restarted for the retry or the next case
    layout = NextGgmlLayout(extra_bufts_, crashes.back().layout);
    if (layout.empty()) break;
  }
  return absl::UnavailableError(
      absl::StrCat("the ggml peer crashed on this case in every layout tried: ",
                   CrashesToString(crashes)));
}

// ---- getting the peer on first run --------------------------------------------------------

std::string FindGgmlBuilder(const char* argv0) {
  std::vector<std::string> candidates;
  if (const char* r = std::getenv("RUNFILES_DIR"); r != nullptr && *r != '\0') {
    candidates.push_back(absl::StrCat(r, "/fused_kernels/tools/setup_ggml"));
  }
  if (argv0 != nullptr) {
    candidates.push_back(absl::StrCat(argv0, ".runfiles/fused_kernels/tools/setup_ggml"));
  }
  char cwd[4096];
  if (getcwd(cwd, sizeof cwd) != nullptr && absl::EndsWith(cwd, ".runfiles/fused_kernels")) {
    candidates.push_back(absl::StrCat(cwd, "/tools/setup_ggml"));  // `bazel run`
  }
  if (const char* ws = std::getenv("BUILD_WORKSPACE_DIRECTORY"); ws != nullptr && *ws != '\0') {
    candidates.push_back(absl::StrCat(ws, "/tools/setup_ggml"));
  }
  for (const std::string& c : candidates) {
    if (IsExecutable(c)) return c;
  }
  return "";
}

namespace {

// `builder --estimate [--peer_only]`: the seconds it expects (-1 if it does not say).
double BuilderEstimate(const std::string& builder) {
  const std::string cmd = absl::StrCat(ShellQuote(builder), " --estimate 2>/dev/null");
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return -1;
  double s = -1;
  if (std::fscanf(p, "%lf", &s) != 1) s = -1;
  pclose(p);
  return s;
}

// Runs `argv` with stdout and stderr into `log_fd`; progress lines on `progress`. Returns
// its waitpid() status, or -1 if it could not be started.
int RunBuilder(const std::vector<std::string>& argv, int log_fd, FILE* progress,
               const GgmlPeerSetup& setup, double expected_s, const std::string& log_path) {
  const pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    signal(SIGPIPE, SIG_DFL);  // the sweep ignores it; the builder's pipelines must not
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    const int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0) dup2(null_fd, 0);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto next = t0 + std::chrono::seconds(std::max(1, setup.progress_every_s));
  int status = 0;
  while (true) {
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0) return -1;
    if (setup.stop != nullptr && *setup.stop) {
      kill(pid, SIGTERM);
      return ReapChild(pid, 10.0);
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= next && progress != nullptr) {
      const double el = std::chrono::duration<double>(now - t0).count();
      std::fprintf(progress, "sweep: still building the ggml peer: %s%s (log: %s)\n",
                   FormatDuration(el).c_str(),
                   expected_s > 0 ? absl::StrCat(" of ~", FormatDuration(expected_s)).c_str() : "",
                   log_path.c_str());
      std::fflush(progress);
      next = now + std::chrono::seconds(std::max(1, setup.progress_every_s));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace

std::unique_ptr<GgmlSupervisor> StartOrBuildGgmlPeer(const GgmlPeerSetup& setup, FILE* progress,
                                                     std::string* status) {
  std::string why;
  std::unique_ptr<GgmlSupervisor> peer = GgmlSupervisor::Start(setup.path, &why);
  if (peer != nullptr) {
    *status = absl::StrCat("ggml ", peer->version(), " from ", setup.path);
    return peer;
  }
  if (!setup.build) {
    *status = absl::StrCat("unavailable: ", why);
    return nullptr;
  }
  if (setup.builder.empty()) {
    *status = absl::StrCat("unavailable: ", why, "; tools/setup_ggml was not found to build it");
    return nullptr;
  }
  const double expected = BuilderEstimate(setup.builder);
  const std::string not_under_quick = absl::StrCat(
      "unavailable: ", why, "; not built under --quick (--ggml=auto builds it",
      expected > 0 ? absl::StrCat(", ~", FormatDuration(expected)) : "",
      " once; or run tools/setup_ggml)");
  if (!setup.full_build && expected > 60) {  // llama-cpp-python itself is missing
    *status = not_under_quick;
    return nullptr;
  }
  std::string log_dir = setup.log_dir;
  if (log_dir.empty()) {
    const char* t = std::getenv("TMPDIR");
    log_dir = t != nullptr && *t != '\0' ? t : "/tmp";
  }
  std::string log_tmpl = absl::StrCat(log_dir, "/sweep-setup-ggml-XXXXXX");
  const int log_fd = mkstemp(&log_tmpl[0]);
  if (log_fd < 0) {
    *status = absl::StrCat("unavailable: ", why, "; cannot create a log file for the build in ",
                           log_dir);
    return nullptr;
  }
  const std::string log_path = log_tmpl;
  std::vector<std::string> argv = {setup.builder};
  if (!setup.full_build) argv.push_back("--peer_only");
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  if (progress != nullptr) {
    std::fprintf(progress, "sweep: ggml peer: %s\n", why.c_str());
    if (setup.full_build) {
      std::fprintf(progress,
                   "sweep: building it with tools/setup_ggml (llama-cpp-python from PyPI and "
                   "mulmat_bench, once, into the cache)%s; log: %s\n",
                   expected > 0 ? absl::StrCat(": expect ~", FormatDuration(expected), " on ",
                                               cores, " cores").c_str()
                                : "",
                   log_path.c_str());
    } else {
      std::fprintf(progress,
                   "sweep: compiling mulmat_bench against the cached llama-cpp-python build "
                   "(tools/setup_ggml --peer_only; log: %s)\n",
                   log_path.c_str());
    }
    std::fflush(progress);
  }
  const auto t0 = std::chrono::steady_clock::now();
  const int st = RunBuilder(argv, log_fd, progress, setup, expected, log_path);
  close(log_fd);
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    const std::string last = LastLine(log_path);
    const std::string how = st == -1 ? "could not be started" : DescribeExit(st);
    if (!setup.full_build && WIFEXITED(st) && WEXITSTATUS(st) == 3) {
      // --peer_only: llama-cpp-python itself is not built; that is the long build.
      *status = not_under_quick;
      unlink(log_path.c_str());
    } else {
      *status = absl::StrCat("unavailable: tools/setup_ggml failed (", how, ") after ",
                             FormatDuration(took), last.empty() ? "" : ": ", last,
                             " (log: ", log_path, ")");
    }
    return nullptr;
  }
  peer = GgmlSupervisor::Start(setup.path, &why);
  if (peer == nullptr) {
    *status = absl::StrCat("unavailable: tools/setup_ggml ran (log: ", log_path, "), but: ", why);
    return nullptr;
  }
  unlink(log_path.c_str());
  *status = absl::StrCat("ggml ", peer->version(), " from ", setup.path,
                         " (built by tools/setup_ggml in ", FormatDuration(took), ")");
  return peer;
}

}  // namespace fk

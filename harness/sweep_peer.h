// The ggml peer: tools/ggml_peer/mulmat_bench (built by tools/setup_ggml into the cache)
// run as a child process that the sweep feeds one case at a time, so ggml's cases are
// measured interleaved with ours, in the same run, on the same machine state.
//
// ggml can crash on a case (ggml 0.25.3 faults at `ldtilecfg` in its AMX mul_mat for every
// batch > 1 on Xeons with AMX). GgmlSupervisor then restarts the peer and retries the case
// with the next weight layout llama.cpp would use (AMX -> CPU_REPACK -> plain), and the
// result names the layout that ran and every crash before it.
#ifndef HARNESS_SWEEP_PEER_H_
#define HARNESS_SWEEP_PEER_H_

#include <sys/types.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace fk {

// One MUL_MAT case for the peer.
struct GgmlCase {
  std::string type;  // ggml's type name ("q4_K")
  int64_t n = 0, k = 0, m = 0;
  int threads = 1;
  int reps = 5;
  double min_time = 0;
  double cold_bytes = 0;
  int check_cols = 1;
  double warmup_time = 0;  // untimed calls (at least one) for at least this many seconds
};

// The peer died while running a case.
struct GgmlCrash {
  std::string layout;       // the layout it was running ("AMX"); "" if it died before saying
  std::string how;          // "killed by SIGSEGV", "exited with code 1"
  std::string stderr_tail;  // its last line on stderr, if any (at most 200 characters)
  std::string ToString() const;  // "AMX: killed by SIGSEGV (stderr: ...)"
};

struct GgmlResult {
  std::string layout;  // the weights' buffer: "AMX", "CPU_REPACK" (repacked by ggml) or "plain"
  int64_t weight_bytes = 0;
  int64_t copies = 0;
  double huge_pct = 0;  // share of the weight buffer in 2 MB pages; NaN when not reported
  std::vector<double> times_s;
  double max_abs_err = 0;  // NaN when ggml's output had NaNs
  double max_rel_err = 0;
  int checked_cols = 0;
  std::vector<GgmlCrash> crashes;  // crashes of this case before the layout that ran
};

// Every crash of a list, "; "-separated (the results' ggml_crash field).
std::string CrashesToString(const std::vector<GgmlCrash>& crashes);

// The signal or exit code of a waitpid() status: "killed by SIGSEGV", "exited with code 1".
std::string DescribeExit(int wait_status);

class GgmlPeer {
 public:
  // The protocol of tools/ggml_peer/mulmat_bench.c this sweep speaks.
  static constexpr int kProtocol = 4;

  // Starts `path`; on failure returns nullptr and a one-line reason in *why_not.
  // Sets SIGPIPE to be ignored (a dead peer is reported by Run(), not by a signal).
  static std::unique_ptr<GgmlPeer> Start(const std::string& path, std::string* why_not);
  ~GgmlPeer();

  const std::string& version() const { return version_; }  // "0.25.3 (commit 0c1e570)"
  const std::string& stderr_path() const { return stderr_path_; }
  // The CPU device's extra buffer types, in the order llama.cpp tries them.
  const std::vector<std::string>& extra_bufts() const { return extra_bufts_; }

  // One MUL_MAT case. `layout`: "auto" (as llama.cpp places the weights), "plain", or the
  // extra buffer type to start the search from (see mulmat_bench.c). An error status for a
  // case ggml rejects; if the child died, alive() turns false, crash() says how, and every
  // later call fails too.
  absl::StatusOr<GgmlResult> Run(const GgmlCase& c, const std::string& layout = "auto");
  absl::StatusOr<GgmlResult> Run(const char* type, int64_t n, int64_t k, int64_t m, int threads,
                                 int reps, double min_time, double cold_bytes, int check_cols) {
    return Run(GgmlCase{type, n, k, m, threads, reps, min_time, cold_bytes, check_cols});
  }
  bool alive() const { return alive_; }
  const GgmlCrash& crash() const { return crash_; }

 private:
  GgmlPeer() = default;
  void Died(const std::string& layout);
  pid_t pid_ = -1;
  FILE* to_ = nullptr;
  FILE* from_ = nullptr;
  bool alive_ = false;
  std::string version_;
  std::string stderr_path_;
  std::vector<std::string> extra_bufts_;
  GgmlCrash crash_;
};

// The layout to retry with after `crashed` crashed: the extra buffer type after it in
// `extra_bufts`, else "plain"; "" when there is none left (plain crashed, or the peer died
// before naming a layout).
std::string NextGgmlLayout(const std::vector<std::string>& extra_bufts, const std::string& crashed);

// A peer that survives ggml's crashes: when the child dies on a case, it is restarted and
// the case retried with NextGgmlLayout(), until a layout runs or none is left. Every case
// starts at "auto" again (where ggml's AMX path works, it is what llama.cpp runs).
class GgmlSupervisor {
 public:
  // Starts the peer at `path`; nullptr and a one-line reason in *why_not if it does not start.
  static std::unique_ptr<GgmlSupervisor> Start(const std::string& path, std::string* why_not);

  const std::string& version() const { return version_; }
  const std::vector<std::string>& extra_bufts() const { return extra_bufts_; }
  int restarts() const { return restarts_; }

  // The case; on success the result's crashes list every crash on the way. An error when
  // ggml rejects the case, when it crashed in every layout (the message names each crash),
  // or when the peer could not be restarted.
  absl::StatusOr<GgmlResult> Run(const GgmlCase& c);

 private:
  GgmlSupervisor() = default;
  std::string path_;
  std::unique_ptr<GgmlPeer> peer_;
  std::string version_;
  std::vector<std::string> extra_bufts_;
  int restarts_ = 0;
};

// The default mulmat_bench location: $FK_CACHE/ggml_peer/mulmat_bench, FK_CACHE defaulting to
// ${XDG_CACHE_HOME:-$HOME/.cache}/fused-kernels (as tools/bazel and tools/setup_ggml).
std::string DefaultGgmlPeerPath();

// ---- getting the peer on first run --------------------------------------------------------

struct GgmlPeerSetup {
  std::string path;     // mulmat_bench
  std::string builder;  // tools/setup_ggml ("" = not found: never built)
  // false: only `builder --peer_only` (compile mulmat_bench against an existing
  // llama-cpp-python build: seconds); true: the whole build if needed (minutes, once).
  bool full_build = true;
  bool build = true;  // false: start `path` as it is (an explicit --ggml=PATH)
  int progress_every_s = 30;
  const volatile int* stop = nullptr;  // Ctrl-C: give up waiting for the builder
  std::string log_dir;  // where the builder's log goes ("" = $TMPDIR, else /tmp); kept if it fails
};

// Starts the peer; if it does not start (missing, outdated, broken) and setup.build, runs
// the builder once (a line with the time it expects, then a progress line every
// progress_every_s seconds on `progress`; its output goes to a log file) and starts it again.
// Returns nullptr when there is no peer; *status is one line either way: what runs, or why
// not (with the builder's last output line when the build failed).
std::unique_ptr<GgmlSupervisor> StartOrBuildGgmlPeer(const GgmlPeerSetup& setup, FILE* progress,
                                                     std::string* status);

// Where tools/setup_ggml is for this binary: in its runfiles (a data dependency), else in
// $BUILD_WORKSPACE_DIRECTORY; "" when neither has it.
std::string FindGgmlBuilder(const char* argv0);

}  // namespace fk

#endif  // HARNESS_SWEEP_PEER_H_

// The ggml peer: tools/ggml_peer/mulmat_bench (built by tools/setup_ggml into the cache)
// run as a child process that the sweep feeds one case at a time, so ggml's cases are
// measured interleaved with ours, in the same run, on the same machine state.
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

struct GgmlResult {
  std::string layout;  // "CPU_REPACK" when ggml repacked the weights, else "plain"
  int64_t weight_bytes = 0;
  int64_t copies = 0;
  std::vector<double> times_s;
  double max_abs_err = 0;  // NaN when ggml's output had NaNs
  double max_rel_err = 0;
  int checked_cols = 0;
};

class GgmlPeer {
 public:
  // The protocol of tools/ggml_peer/mulmat_bench.c this sweep speaks.
  static constexpr int kProtocol = 2;

  // Starts `path`; on failure returns nullptr and a one-line reason in *why_not.
  // Sets SIGPIPE to be ignored (a dead peer is reported by Run(), not by a signal).
  static std::unique_ptr<GgmlPeer> Start(const std::string& path, std::string* why_not);
  ~GgmlPeer();

  const std::string& version() const { return version_; }  // "0.25.3 (commit 0c1e570)"
  const std::string& stderr_path() const { return stderr_path_; }

  // One MUL_MAT case. An error status for a case ggml rejects; if the child died, every
  // later call fails too (alive() turns false).
  absl::StatusOr<GgmlResult> Run(const char* type, int64_t n, int64_t k, int64_t m, int threads,
                                 int reps, double min_time, double cold_bytes, int check_cols);
  bool alive() const { return alive_; }

 private:
  GgmlPeer() = default;
  pid_t pid_ = -1;
  FILE* to_ = nullptr;
  FILE* from_ = nullptr;
  bool alive_ = false;
  std::string version_;
  std::string stderr_path_;
};

// The default mulmat_bench location: $FK_CACHE/ggml_peer/mulmat_bench, FK_CACHE defaulting to
// ${XDG_CACHE_HOME:-$HOME/.cache}/fused-kernels (as tools/bazel and tools/setup_ggml).
std::string DefaultGgmlPeerPath();

}  // namespace fk

#endif  // HARNESS_SWEEP_PEER_H_

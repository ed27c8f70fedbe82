// make_synthetic_model: writes a TinyLlama-1.1B-shaped llama model with random weights of
// realistic scale, once per format, into the cache (never into the tree).
//
//   tools/bazel run //runtime:make_synthetic_model -- [--formats=F32,Q4_K] [--shape=1.1b]
//
// Files already present (same shape, same generator version) are kept. Prints one line per
// format on stdout: "<FORMAT> <path> <bytes>". Exit code 2 on any error.
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "kernels/formats.h"
#include "runtime/quantize_synthetic.h"
#include "runtime/user_path.h"

namespace {

constexpr char kUsage[] =
    "make_synthetic_model: a llama model with random weights of realistic scale, written in\n"
    "each requested format into the cache directory (never committed).\n"
    "\n"
    "usage: tools/bazel run //runtime:make_synthetic_model -- [flags]\n"
    "\n"
    "  --formats=LIST  comma-separated formats (default F32,Q8_0,Q6_K,Q5_K,Q4_K,Q4_0);\n"
    "                  any of %s\n"
    "  --shape=NAME    1.1b: TinyLlama-1.1B (hidden 2048, 22 layers, 32 heads, 4 KV heads,\n"
    "                  FFN 5632, vocab 32000; default) or tiny (hidden 256, 2 layers,\n"
    "                  4 heads, 2 KV heads, FFN 768, vocab 1024) for quick runs\n"
    "  --dir=PATH      output directory (default $FK_CACHE/synthetic)\n"
    "  --threads=N     generation threads (default: all cores)\n"
    "  --force         regenerate files that exist\n"
    "  --quiet         no progress\n"
    "\n"
    "Files: <dir>/<name>-%s/<FORMAT>.gguf (the version changes when the generator's output\n"
    "does). Each is written to a temporary file and renamed, so an existing file is complete.\n"
    "Prints \"<FORMAT> <path> <bytes>\" per format on stdout.\n";

[[noreturn]] void Fail(const std::string& msg) {
  std::fprintf(stderr, "make_synthetic_model: %s\n", msg.c_str());
  std::exit(2);
}

std::string DefaultDir() {
  if (const char* c = std::getenv("FK_CACHE"); c != nullptr && *c != '\0') {
    return std::string(c) + "/synthetic";
  }
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x != nullptr && *x != '\0') {
    return std::string(x) + "/fused-kernels/synthetic";
  }
  const char* home = std::getenv("HOME");
  return std::string(home ? home : ".") + "/.cache/fused-kernels/synthetic";
}

bool MakeDirs(const std::string& path) {
  for (size_t i = 1; i <= path.size(); ++i) {
    if (i == path.size() || path[i] == '/') {
      const std::string p = path.substr(0, i);
      if (mkdir(p.c_str(), 0755) != 0 && errno != EEXIST) return false;
    }
  }
  return true;
}

int64_t FileSize(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : -1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string formats_flag = "F32,Q8_0,Q6_K,Q5_K,Q4_K,Q4_0", shape = "1.1b", dir;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  bool force = false, quiet = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* flag) -> const char* {
      const std::string prefix = std::string(flag) + "=";
      return absl::StartsWith(a, prefix) ? argv[i] + prefix.size() : nullptr;
    };
    if (a == "--help" || a == "-h") {
      std::printf(kUsage, fk::format_names(), fk::kSyntheticVersion);
      return 0;
    } else if (const char* v = value("--formats")) {
      formats_flag = v;
    } else if (const char* v = value("--shape")) {
      shape = v;
    } else if (const char* v = value("--dir")) {
      dir = fk::UserPath(v);
    } else if (const char* v = value("--threads")) {
      if (!absl::SimpleAtoi(v, &threads) || threads < 1 || threads > 1024) {
        Fail(absl::StrFormat("--threads=%s: expected an integer from 1 to 1024", v));
      }
    } else if (a == "--force") {
      force = true;
    } else if (a == "--quiet") {
      quiet = true;
    } else {
      Fail(absl::StrFormat("unknown argument '%s' (try --help)", a));
    }
  }
  fk::SyntheticLlamaConfig config;
  if (shape == "tiny") {
    config.name = "synthetic-tiny";
    config.hidden = 256;
    config.layers = 2;
    config.heads = 4;
    config.kv_heads = 2;
    config.ffn = 768;
    config.vocab = 1024;
    config.context = 512;
  } else if (shape != "1.1b") {
    Fail(absl::StrFormat("--shape=%s: expected 1.1b or tiny", shape));
  }
  std::vector<fk::Format> formats;
  for (absl::string_view name : absl::StrSplit(formats_flag, ',', absl::SkipWhitespace())) {
    const fk::FormatTraits* t = fk::find_format(name);
    if (t == nullptr) {
      Fail(absl::StrFormat("--formats: unknown format '%s'; one of %s", name, fk::format_names()));
    }
    formats.push_back(t->format);
  }
  if (formats.empty()) Fail("--formats is empty");
  if (dir.empty()) dir = DefaultDir();

  const bool tty = isatty(2);
  for (fk::Format f : formats) {
    const std::string path = fk::SyntheticModelPath(dir, config, f);
    const std::string parent = path.substr(0, path.rfind('/'));
    if (!MakeDirs(parent)) Fail(absl::StrFormat("cannot create directory %s", parent));
    if (!force && FileSize(path) > 0) {
      if (!quiet) std::fprintf(stderr, "make_synthetic_model: %s exists\n", path.c_str());
      std::printf("%s %s %lld\n", fk::traits(f).name, path.c_str(),
                  static_cast<long long>(FileSize(path)));
      continue;
    }
    if (!quiet) {
      std::fprintf(stderr, "make_synthetic_model: writing %s (%.2fB parameters, %s)\n",
                   path.c_str(), fk::SyntheticParameterCount(config) / 1e9,
                   fk::traits(f).name);
    }
    const auto start = std::chrono::steady_clock::now();
    double last = -1;
    auto progress = [&](uint64_t done, uint64_t total) {
      if (quiet) return;
      const double t =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (done < total && t - last < (tty ? 0.5 : 10.0)) return;
      last = t;
      const double frac = total == 0 ? 1.0 : double(done) / double(total);
      std::fprintf(stderr, "%smake_synthetic_model: %s %5.1f%%  %5.0f s elapsed, ETA %5.0f s%s",
                   tty ? "\r" : "", fk::traits(f).name, 100 * frac, t,
                   frac > 0 ? t / frac - t : 0.0, tty && done < total ? "" : "\n");
      std::fflush(stderr);
    };
    absl::StatusOr<uint64_t> size = fk::WriteSyntheticLlama(config, f, path, threads, progress);
    if (!size.ok()) Fail(std::string(size.status().message()));
    std::printf("%s %s %llu\n", fk::traits(f).name, path.c_str(),
                static_cast<unsigned long long>(*size));
    std::fflush(stdout);
  }
  return 0;
}

// quantize: requantize a GGUF model with the project's reference quantizers.
//
//   tools/bazel run //runtime:quantize -- --in=IN.gguf --out=OUT.gguf --type=q4_K
//
// See runtime/quantize.h for what is written. Exit code 0 on success, 2 on any error
// (one message naming the file, tensor or flag).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "kernels/formats.h"
#include "runtime/gguf.h"
#include "runtime/quantize.h"
#include "runtime/user_path.h"

namespace {

constexpr char kUsage[] =
    "quantize: requantize every 2-D weight of a GGUF model into one format.\n"
    "\n"
    "usage: tools/bazel run //runtime:quantize -- --in=IN.gguf --out=OUT.gguf [--type=Q4_K]\n"
    "\n"
    "  --in=PATH      input GGUF (F32, F16, BF16 or any of the formats below)\n"
    "  --out=PATH     output GGUF; written to PATH.tmp, then renamed (never half-written)\n"
    "  --type=NAME    target format, case-insensitive: %s (default Q4_K)\n"
    "  --threads=N    quantization threads (default: all cores)\n"
    "  --quiet        no progress and no summary\n"
    "  --help         this text\n"
    "\n"
    "Each row is dequantized with the source format's reference dequantizer and quantized\n"
    "with the target's reference quantizer. 1-D tensors (norms) are written as F32.\n"
    "Metadata is copied; general.file_type becomes llama.cpp's LLAMA_FTYPE of the target\n"
    "(Q4_K -> 14 Q4_K_S, Q5_K -> 16 Q5_K_S; removed for Q8_K, which llama.cpp cannot run).\n"
    "A row that is not a multiple of the target's block gets llama.cpp's fallback type\n"
    "instead (again, until one fits; F32 always does): %s. A per-type summary is printed.\n"
    "Relative paths are taken from the directory `bazel run` was called in.\n";

// "Q4_K -> Q5_0, Q5_K -> Q5_1, ...": the fallback column of the format table.
std::string FallbackList() {
  std::vector<std::string> parts;
  for (const fk::FormatTraits& t : fk::all_formats()) {
    if (t.fallback != t.format && t.block_elems > 1) {
      parts.push_back(absl::StrCat(t.name, " -> ", fk::traits(t.fallback).name));
    }
  }
  return absl::StrJoin(parts, ", ");
}

[[noreturn]] void Fail(const std::string& msg) {
  std::fprintf(stderr, "quantize: %s\n", msg.c_str());
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::string in_path, out_path, type_name = "Q4_K";
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  bool quiet = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* flag) -> const char* {
      const std::string prefix = std::string(flag) + "=";
      return absl::StartsWith(a, prefix) ? argv[i] + prefix.size() : nullptr;
    };
    if (a == "--help" || a == "-h") {
      std::printf(kUsage, fk::format_names(), FallbackList().c_str());
      return 0;
    } else if (const char* v = value("--in")) {
      in_path = v;
    } else if (const char* v = value("--out")) {
      out_path = v;
    } else if (const char* v = value("--type")) {
      type_name = v;
    } else if (const char* v = value("--threads")) {
      if (!absl::SimpleAtoi(v, &threads) || threads < 1 || threads > 1024) {
        Fail(absl::StrFormat("--threads=%s: expected an integer from 1 to 1024", v));
      }
    } else if (a == "--quiet") {
      quiet = true;
    } else {
      Fail(absl::StrFormat("unknown argument '%s' (try --help)", a));
    }
  }
  if (in_path.empty()) Fail("--in=PATH is required (try --help)");
  if (out_path.empty()) Fail("--out=PATH is required (try --help)");
  const fk::FormatTraits* target = fk::find_format(type_name);
  if (target == nullptr) {
    Fail(absl::StrFormat("--type=%s: unknown format; one of %s", type_name, fk::format_names()));
  }
  in_path = fk::UserPath(in_path);
  out_path = fk::UserPath(out_path);

  absl::StatusOr<fk::GgufFile> in = fk::GgufFile::Open(in_path);
  if (!in.ok()) Fail(std::string(in.status().message()));

  fk::QuantizeOptions options;
  options.target = target->format;
  options.threads = threads;
  const auto start = std::chrono::steady_clock::now();
  const bool tty = isatty(2);
  double last_print = -1;
  if (!quiet) {
    std::fprintf(stderr, "quantize: %s (%zu tensors, %.1f MB) -> %s as %s, %d thread(s)\n",
                 in_path.c_str(), in->tensors().size(), in->file_size() / 1e6, out_path.c_str(),
                 target->name, threads);
    options.progress = [&](uint64_t done, uint64_t total, const std::string& tensor) {
      const double t =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const bool last = done >= total;
      if (!last && t - last_print < (tty ? 0.5 : 5.0)) return;
      last_print = t;
      const double frac = total == 0 ? 1.0 : double(done) / double(total);
      const double eta = frac > 0 ? t / frac - t : 0;
      std::fprintf(stderr, "%squantize: %5.1f%%  %-28s  %5.1f s elapsed, ETA %5.1f s%s",
                   tty ? "\r" : "", 100 * frac, tensor.c_str(), t, eta,
                   tty && !last ? "" : "\n");
      std::fflush(stderr);
    };
  }
  absl::StatusOr<fk::QuantizeReport> report = fk::QuantizeGguf(*in, out_path, options);
  if (!report.ok()) {
    if (tty && !quiet) std::fprintf(stderr, "\n");
    Fail(std::string(report.status().message()));
  }
  if (!quiet) {
    const double t =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("%s", fk::FormatQuantizeReport(*report).c_str());
    if (target->format == fk::Format::kQ8_K && report->written.count("Q8_K")) {
      std::printf("note: llama.cpp cannot run Q8_K weights (it loads the file, then crashes in "
                  "its first decode: ggml's CPU backend has no Q8_K matmul); this project's "
                  "runtime can.\n");
    }
    std::printf("wrote %s in %.1f s\n", out_path.c_str(), t);
  }
  return 0;
}

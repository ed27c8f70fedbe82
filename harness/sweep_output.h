// results.json / results.csv of a sweep run, rewritten atomically (temporary file + rename)
// after every case, so an interrupted run leaves valid files with what was measured.
#ifndef HARNESS_SWEEP_OUTPUT_H_
#define HARNESS_SWEEP_OUTPUT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"

namespace fk {

// The per-case fields, in CSV column order, with their meaning (results.json "fields").
nlohmann::ordered_json FieldDescriptions();
// The CSV columns (the scalar fields of a record, in order).
std::vector<std::string> CsvColumns();

// Writes `contents` to `path` through `path`.tmp and rename(), so readers never see a
// partial file.
absl::Status WriteFileAtomically(const std::string& path, const std::string& contents);

class ResultsWriter {
 public:
  explicit ResultsWriter(std::string dir) : dir_(std::move(dir)) {}
  // The document without its cases: {"machine":..., "run":..., "fields":...}. Call again to
  // update it (run status, times).
  void SetHeader(const nlohmann::ordered_json& head);
  // Appends one case record (serialized once, here).
  void AddCase(const nlohmann::ordered_json& record);
  // Replaces case i (in AddCase order; i < cases()).
  void SetCase(size_t i, const nlohmann::ordered_json& record);
  size_t cases() const { return case_json_.size(); }
  // Writes results.json ({header..., "cases": [...]}, one line per case) and results.csv.
  absl::Status Write() const;

 private:
  std::string dir_;
  std::string head_;
  std::vector<std::string> case_json_;
  std::vector<std::string> case_csv_;
};

// One CSV line (no newline) of a record, in CsvColumns() order; missing fields are empty.
std::string CsvLine(const nlohmann::ordered_json& record);

// Sets a measured record's roofline fields against `value` (GB/s for "dram_read", GFLOP/s
// for "peak_f32" / "peak_int8"), from its weight_gbps resp. gflops: roofline,
// roofline_value, roofline_trusted, pct_of_roofline (null when !trusted: no share of a
// roofline whose probes were all taken under load) and above_roofline (the case measured
// more than the roofline: a flag, never a plain share).
void SetRoofline(const std::string& roofline, double value, bool trusted,
                 nlohmann::ordered_json* record);

// A case measured again in a later pass (sweep --passes): the record to keep, `kept` or
// `again`, whichever has the lower median (an error loses; a tie keeps `kept`), with kept's
// id, and pass_medians_s (every pass's median so far, null for a pass that failed) and
// pass_kept (1-based) filled in. `again` null: the first pass (pass_kept 1, one median).
nlohmann::ordered_json MergePass(const nlohmann::ordered_json& kept,
                                 const nlohmann::ordered_json& again);

// The console's roofline column of a record: "  87% DRAM", " 115%!DRAM" (above the
// roofline: a flag), "  n/a DRAM" (no share: no quiet probe yet), "  n/a!DRAM"; "int8pk" /
// "f32pk" for the peaks.
std::string RooflineConsole(const nlohmann::ordered_json& record);

}  // namespace fk

#endif  // HARNESS_SWEEP_OUTPUT_H_

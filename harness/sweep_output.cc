#include "harness/sweep_output.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace fk {
namespace {

struct Field {
  const char* name;
  const char* meaning;
};
constexpr Field kFields[] = {
    {"id", "case number in this run (run order)"},
    {"machine_id", "short CPU name and core count; identical to machine.machine_id"},
    {"kind", "fused: a registry kernel on the format's weights; dequant_then_matmul: "
             "dequantize the whole matrix to F32 then the F32 kernel; ggml: ggml's MUL_MAT"},
    {"format", "weight format (F32, Q4_0, ..., Q8_K)"},
    {"variant", "scalar, avx2, avx512, avx512_vnni (the F32 kernel's for dequant_then_matmul), "
                "or ggml"},
    {"path", "f32: f32 activations; int8: activations quantized once per call (ggml's "
             "quantized types are int8 too)"},
    {"kernel", "registry name (e.g. q4_k_int8__avx2), dequant+<F32 kernel>, or ggml <type> "
               "<weight layout>"},
    {"software_prefetch", "fused and dequant_then_matmul: whether dispatch let the kernel issue "
                          "software prefetches of the weight rows (its per-CPU choice, "
                          "kernels/matmul.h software_prefetch_for; FK_PREFETCH overrides it)"},
    {"n", "weight rows = output columns"},
    {"k", "reduction length"},
    {"m", "batch: activation rows"},
    {"threads", "threads of the call"},
    {"reps", "timed calls"},
    {"median_s", "median seconds per call"},
    {"p25_s", "first quartile, seconds"},
    {"p75_s", "third quartile, seconds"},
    {"min_s", "fastest call, seconds"},
    {"max_s", "slowest call, seconds"},
    {"spread_pct", "(p75 - p25) / median, percent"},
    {"gflops", "2*m*n*k / median / 1e9"},
    {"weight_gbps", "weight_bytes / median / 1e9 (bytes of the format, not of F32)"},
    {"roofline", "dram_read (batch 1), peak_f32 or peak_int8 (batch > 1; none for the bf16 and f16 paths)"},
    {"roofline_value", "the roofline in GB/s (dram_read: the best DRAM probe of this run with the "
                       "same thread count, machine.dram_probes) or GFLOP/s (peaks, same thread "
                       "count)"},
    {"roofline_trusted", "dram_read: at least one DRAM probe with this thread count was taken "
                         "on a quiet machine (otherwise roofline_value is only a lower bound and "
                         "no share is given); the peaks: always true"},
    {"pct_of_roofline", "weight_gbps (batch 1) or gflops (batch > 1) as percent of roofline_value; "
                        "empty (null) when roofline_trusted is false"},
    {"above_roofline", "true when the case measured more than roofline_value: the probe was low "
                       "or the case is not what it claims (e.g. weights from a cache); such a "
                       "share is a flag, not a result"},
    {"weight_bytes", "memory_bytes() of the n x k weights in this format"},
    {"f32_bytes", "n*k*4: the same matrix in F32"},
    {"bits_per_weight", "8 * block bytes / block elements"},
    {"weight_copies", "identical copies cycled call by call (cold weights)"},
    {"weight_huge_pct", "percent of the weight copies' bytes the kernel backed with 2 MB pages "
                        "(all copies are advised for them, ours and ggml's; /proc/self/smaps "
                        "AnonHugePages). Empty when smaps could not be read"},
    {"rss_peak_bytes", "peak resident set of the sweep process so far (not ggml's)"},
    {"loadavg_1m", "the machine's 1-minute load average when the case ended (other work "
                   "running makes timings noisy)"},
    {"max_abs_err", "max |y - ref| over the checked outputs; null if y had NaN"},
    {"max_rel_err", "max_abs_err / max |ref| over the checked outputs"},
    {"err_checked", "outputs compared with the float64 reference"},
    {"ggml_layout", "ggml only: the weights' buffer that ran: AMX, CPU_REPACK (repacked by "
                    "ggml) or plain"},
    {"ggml_crash", "ggml only, when ggml crashed on the case first: each crash as <layout>: "
                   "<signal or exit> (stderr: ...), '; '-separated; the peer was restarted and "
                   "the case retried with the next layout llama.cpp would use"},
    {"other_cores", "ours only: the other work on the machine during the case's calls (warm-up "
                    "and timed), in cores "
                    "(/proc/stat less this process; 1 = one core busy throughout). A 2-thread "
                    "case needs both cores: above about 0.25 its time is suspect. Empty for "
                    "ggml, whose peer process is that other work, and for a case too short "
                    "for /proc/stat's ticks to resolve a quarter core (harness/machine.h: "
                    "OtherBusyResolution)"},
    {"worker_task_pct", "ours with 2+ threads: percent of the thread pool's tasks (column "
                        "chunks) that its worker threads ran, the calling thread the rest, over "
                        "the case's calls: about 100 (t - 1) / t when every thread took part; "
                        "near 0 when only the calling thread ran (a thread not scheduled, whose "
                        "work the caller then does: the time is one thread's)"},
    {"own_cores", "ours with 2+ threads: this process's CPU time over the wall time of the "
                  "case's calls (warm-up and timed), in cores: about t when each of the t "
                  "threads had a CPU of its own throughout (they work or spin); about 1 when "
                  "they took turns on one CPU, although each ran its share of the tasks (the "
                  "time is then one thread's)"},
    {"pass_kept", "with --passes > 1, batch-1 cases only: which pass (1-based) this record "
                  "is from, the one with the lowest median; every other field is that pass's"},
    {"pass_medians_s", "with --passes > 1, batch-1 cases only: the median of every pass, in "
                       "pass order (null for a pass that failed; JSON only)"},
    {"error", "present when the case failed: the message (no timings then)"},
    {"times_s", "every timed call, seconds (JSON only)"},
};

// Fields that are arrays: in results.json only.
bool JsonOnly(const std::string& field) { return field == "times_s" || field == "pass_medians_s"; }

std::string CsvCell(const nlohmann::ordered_json& v) {
  if (v.is_null()) return "";
  if (v.is_string()) {
    std::string s = v.get<std::string>();
    if (s.find_first_of(",\"\n") == std::string::npos) return s;
    std::string q = "\"";
    for (char c : s) {
      if (c == '"') q += '"';
      q += c;
    }
    return q + "\"";
  }
  if (v.is_number_float()) return absl::StrFormat("%.6g", v.get<double>());
  return v.dump();
}

}  // namespace

nlohmann::ordered_json FieldDescriptions() {
  nlohmann::ordered_json j;
  for (const Field& f : kFields) j[f.name] = f.meaning;
  return j;
}

std::vector<std::string> CsvColumns() {
  std::vector<std::string> cols;
  for (const Field& f : kFields) {
    if (!JsonOnly(f.name)) cols.push_back(f.name);
  }
  return cols;
}

std::string CsvLine(const nlohmann::ordered_json& record) {
  std::vector<std::string> cells;
  for (const std::string& c : CsvColumns()) {
    auto it = record.find(c);
    cells.push_back(it == record.end() ? "" : CsvCell(*it));
  }
  return absl::StrJoin(cells, ",");
}

nlohmann::ordered_json MergePass(const nlohmann::ordered_json& kept,
                                 const nlohmann::ordered_json& again) {
  using ojson = nlohmann::ordered_json;
  const auto median = [](const ojson& r) {
    auto it = r.find("median_s");
    return r.contains("error") || it == r.end() || !it->is_number() ? ojson() : *it;
  };
  ojson medians = kept.value("pass_medians_s", ojson::array());
  if (medians.empty()) medians.push_back(median(kept));
  bool take = false;
  if (!again.is_null()) {
    medians.push_back(median(again));
    const ojson k = median(kept);
    take = !medians.back().is_null() &&
           (k.is_null() || medians.back().get<double>() < k.get<double>());
  }
  ojson out = take ? again : kept;
  if (take) out["id"] = kept["id"];
  out["pass_kept"] = take ? static_cast<int>(medians.size()) : kept.value("pass_kept", 1);
  // pass_medians_s goes last, before times_s (the two JSON-only arrays).
  ojson times = out.contains("times_s") ? out["times_s"] : ojson();
  out.erase("pass_medians_s");
  out.erase("times_s");
  out["pass_medians_s"] = medians;
  if (!times.is_null()) out["times_s"] = times;
  return out;
}

void SetRoofline(const std::string& roofline, double value, bool trusted,
                 nlohmann::ordered_json* record) {
  nlohmann::ordered_json& j = *record;
  const char* rate = roofline == "dram_read" ? "weight_gbps" : "gflops";
  const double measured = j.contains(rate) && j[rate].is_number() ? j[rate].get<double>() : 0.0;
  j["roofline"] = roofline;
  j["roofline_value"] = value;
  j["roofline_trusted"] = trusted;
  if (value > 0 && trusted) {
    j["pct_of_roofline"] = 100.0 * measured / value;
  } else {
    j["pct_of_roofline"] = nullptr;
  }
  j["above_roofline"] = value > 0 && measured > value;
}

std::string RooflineConsole(const nlohmann::ordered_json& record) {
  const std::string roofline = record.value("roofline", "");
  const char* name = roofline == "dram_read"   ? "DRAM"
                     : roofline == "peak_int8" ? "int8pk"
                     : roofline == "none"      ? "-"
                                               : "f32pk";
  const auto pct = record.find("pct_of_roofline");
  const std::string share = pct != record.end() && pct->is_number()
                                ? absl::StrFormat("%4.0f%%", pct->get<double>())
                                : std::string("  n/a");
  return absl::StrCat(share, record.value("above_roofline", false) ? "!" : " ", name);
}

absl::Status WriteFileAtomically(const std::string& path, const std::string& contents) {
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) {
    return absl::InternalError(absl::StrCat("cannot write ", tmp, ": ", std::strerror(errno)));
  }
  const bool ok = std::fwrite(contents.data(), 1, contents.size(), f) == contents.size();
  if (std::fclose(f) != 0 || !ok) {
    std::remove(tmp.c_str());
    return absl::InternalError(absl::StrCat("cannot write ", tmp, ": ", std::strerror(errno)));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(
        absl::StrCat("cannot rename ", tmp, " to ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

void ResultsWriter::SetHeader(const nlohmann::ordered_json& head) {
  // Readable and diffable: the header indented, then one line per case.
  nlohmann::ordered_json h = head;
  h.erase("cases");
  head_ = h.dump(1);
  head_.erase(head_.rfind('}'));
  while (!head_.empty() && head_.back() == '\n') head_.pop_back();
}

void ResultsWriter::AddCase(const nlohmann::ordered_json& record) {
  case_json_.push_back(record.dump());
  case_csv_.push_back(CsvLine(record));
}

void ResultsWriter::SetCase(size_t i, const nlohmann::ordered_json& record) {
  case_json_.at(i) = record.dump();
  case_csv_.at(i) = CsvLine(record);
}

absl::Status ResultsWriter::Write() const {
  std::string json = head_;
  json += ",\n \"cases\": [";
  for (size_t i = 0; i < case_json_.size(); ++i) {
    json += i == 0 ? "\n  " : ",\n  ";
    json += case_json_[i];
  }
  json += "\n ]\n}\n";
  absl::Status s = WriteFileAtomically(dir_ + "/results.json", json);
  if (!s.ok()) return s;
  std::string csv = absl::StrJoin(CsvColumns(), ",") + "\n";
  for (const std::string& line : case_csv_) csv += line + "\n";
  return WriteFileAtomically(dir_ + "/results.csv", csv);
}

}  // namespace fk

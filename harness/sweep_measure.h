// Measurement pieces of the sweep: timing statistics, the float64 reference and the error
// of a case against it, process memory.
#ifndef HARNESS_SWEEP_MEASURE_H_
#define HARNESS_SWEEP_MEASURE_H_

#include <cstdint>
#include <functional>
#include <vector>

namespace fk {

struct TimeStats {
  int reps = 0;
  double median = 0, min = 0, max = 0, p25 = 0, p75 = 0;
  double spread_pct = 0;  // (p75 - p25) / median * 100: the interquartile range, relative
};
// Statistics of the timed repetitions (empty input: all zero).
TimeStats ComputeStats(std::vector<double> times);

// Calls fn(rep) untimed at least `warmup` times and until `warmup_time` seconds of such
// calls have passed (at most max_reps), then at least `reps` times and until `min_time`
// seconds of timed calls have passed (at most max_reps), returning each timed call's seconds.
// Stops early (returning what was timed) when *stop becomes true or fn returns false.
// `clock` returns seconds on a monotonic scale; unset, std::chrono::steady_clock (tests
// inject a fake one, so the rules are checked without depending on the machine's speed).
using SecondsClock = std::function<double()>;
std::vector<double> TimeReps(const std::function<bool(int rep)>& fn, int warmup,
                             double warmup_time, int reps, double min_time, int max_reps,
                             const volatile int* stop, const SecondsClock& clock = nullptr);

// Interleaved shares. gbps[r][f]: format f's GB/s in round r of bursts run one after
// another (<= 0 or NaN: f did not run in that round). Per round, every format that ran is
// divided by the round's highest; per format, the median of those ratios over the rounds it
// ran in (NaN if none), with the quartiles. Formats thus meet the same machine state, where
// comparing each format's best over a whole run compares different moments of it.
struct ShareStats {
  double median = 0, p25 = 0, p75 = 0;
  int rounds = 0;              // rounds it ran in
  std::vector<double> shares;  // per round it ran in, in order
};
std::vector<ShareStats> InterleavedShares(const std::vector<std::vector<double>>& gbps);
// Each round's highest GB/s (0 where no format ran): InterleavedShares' denominators.
std::vector<double> RoundBest(const std::vector<std::vector<double>>& gbps);

// Output columns to check against the reference: `count` columns spread evenly over [0, n)
// including the first and the last, plus the last partial tile's columns (n - 1 - i for
// i < 8), sorted and unique.
std::vector<int64_t> CheckColumns(int64_t n, int count);

// The float64 reference: ref[i * cols.size() + c] = sum_q x[i*k + q] * w(cols[c])[q] for
// rows i < m, where w(j) is the dequantized weight row j (row_of(j) returns its k floats).
std::vector<double> ReferenceColumns(const float* x, int64_t m, int64_t k,
                                     const std::vector<int64_t>& cols,
                                     const std::function<const float*(int64_t)>& row_of);

struct ErrorStats {
  double max_abs_err = 0;  // max |y - ref| over the checked outputs (NaN if y has a NaN)
  double max_rel_err = 0;  // max_abs_err / max |ref|
  double ref_max_abs = 0;
  int64_t checked = 0;     // outputs compared
};
// Compares out (m x n, row-major) at the checked columns with the reference.
ErrorStats CompareColumns(const float* out, int64_t m, int64_t n,
                          const std::vector<int64_t>& cols, const std::vector<double>& ref);

// Peak resident set size of this process so far, in bytes (getrusage).
int64_t PeakRssBytes();

}  // namespace fk

#endif  // HARNESS_SWEEP_MEASURE_H_

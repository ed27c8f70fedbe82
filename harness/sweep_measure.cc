#include "harness/sweep_measure.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

namespace fk {
namespace {

// Linear interpolation between closest ranks of a sorted vector.
double Quantile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(sorted.size() - 1, lo + 1);
  const double f = pos - static_cast<double>(lo);
  return sorted[lo] * (1 - f) + sorted[hi] * f;
}

}  // namespace

TimeStats ComputeStats(std::vector<double> times) {
  TimeStats s;
  if (times.empty()) return s;
  std::sort(times.begin(), times.end());
  s.reps = static_cast<int>(times.size());
  s.min = times.front();
  s.max = times.back();
  s.median = Quantile(times, 0.5);
  s.p25 = Quantile(times, 0.25);
  s.p75 = Quantile(times, 0.75);
  s.spread_pct = s.median > 0 ? (s.p75 - s.p25) / s.median * 100.0 : 0.0;
  return s;
}

std::vector<double> RoundBest(const std::vector<std::vector<double>>& gbps) {
  std::vector<double> best(gbps.size(), 0.0);
  for (size_t r = 0; r < gbps.size(); ++r) {
    for (double g : gbps[r]) {
      if (g > best[r]) best[r] = g;  // false for NaN
    }
  }
  return best;
}

std::vector<ShareStats> InterleavedShares(const std::vector<std::vector<double>>& gbps) {
  size_t formats = 0;
  for (const std::vector<double>& round : gbps) formats = std::max(formats, round.size());
  std::vector<ShareStats> out(formats);
  const std::vector<double> best = RoundBest(gbps);
  for (size_t r = 0; r < gbps.size(); ++r) {
    if (best[r] <= 0) continue;
    for (size_t f = 0; f < gbps[r].size(); ++f) {
      if (gbps[r][f] > 0) out[f].shares.push_back(gbps[r][f] / best[r]);
    }
  }
  for (ShareStats& s : out) {
    s.rounds = static_cast<int>(s.shares.size());
    if (s.shares.empty()) {
      s.median = s.p25 = s.p75 = std::nan("");
      continue;
    }
    const TimeStats t = ComputeStats(s.shares);
    s.median = t.median;
    s.p25 = t.p25;
    s.p75 = t.p75;
  }
  return out;
}

std::vector<double> TimeReps(const std::function<bool(int rep)>& fn, int warmup,
                             double warmup_time, int reps, double min_time, int max_reps,
                             const volatile int* stop, const SecondsClock& clock) {
  const SecondsClock now = clock ? clock : [] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  };
  int rep = 0;
  const double warm_start = now();
  for (int w = 0; w < max_reps && (w < warmup || now() - warm_start < warmup_time); ++w) {
    if (*stop || !fn(rep++)) return {};
  }
  std::vector<double> times;
  double total = 0;
  while (static_cast<int>(times.size()) < max_reps &&
         (static_cast<int>(times.size()) < reps || total < min_time)) {
    if (*stop) break;
    const double t0 = now();
    const bool ok = fn(rep++);
    const double s = now() - t0;
    if (!ok) break;
    times.push_back(s);
    total += s;
  }
  return times;
}

std::vector<int64_t> CheckColumns(int64_t n, int count) {
  std::vector<int64_t> cols;
  if (n <= 0) return cols;
  count = std::max(1, count);
  if (count >= n) {
    for (int64_t j = 0; j < n; ++j) cols.push_back(j);
    return cols;
  }
  for (int c = 0; c < count; ++c) {
    cols.push_back(count == 1 ? n - 1
                              : static_cast<int64_t>(static_cast<double>(c) *
                                                     static_cast<double>(n - 1) / (count - 1)));
  }
  for (int64_t i = 0; i < 8 && i < n; ++i) cols.push_back(n - 1 - i);
  std::sort(cols.begin(), cols.end());
  cols.erase(std::unique(cols.begin(), cols.end()), cols.end());
  return cols;
}

std::vector<double> ReferenceColumns(const float* x, int64_t m, int64_t k,
                                     const std::vector<int64_t>& cols,
                                     const std::function<const float*(int64_t)>& row_of) {
  const size_t nc = cols.size();
  std::vector<double> ref(static_cast<size_t>(m) * nc, 0.0);
  for (size_t c = 0; c < nc; ++c) {
    const float* w = row_of(cols[c]);
    for (int64_t i = 0; i < m; ++i) {
      const float* xi = x + i * k;
      // Four partial sums: float64 products of floats are exact, the order of the adds only
      // moves the result by a few double ulps.
      double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
      int64_t q = 0;
      for (; q + 4 <= k; q += 4) {
        a0 += static_cast<double>(xi[q]) * w[q];
        a1 += static_cast<double>(xi[q + 1]) * w[q + 1];
        a2 += static_cast<double>(xi[q + 2]) * w[q + 2];
        a3 += static_cast<double>(xi[q + 3]) * w[q + 3];
      }
      for (; q < k; ++q) a0 += static_cast<double>(xi[q]) * w[q];
      ref[static_cast<size_t>(i) * nc + c] = (a0 + a1) + (a2 + a3);
    }
  }
  return ref;
}

ErrorStats CompareColumns(const float* out, int64_t m, int64_t n,
                          const std::vector<int64_t>& cols, const std::vector<double>& ref) {
  ErrorStats e;
  const size_t nc = cols.size();
  for (int64_t i = 0; i < m; ++i) {
    for (size_t c = 0; c < nc; ++c) {
      const double r = ref[static_cast<size_t>(i) * nc + c];
      const double y = out[i * n + cols[c]];
      const double err = std::fabs(y - r);
      if (std::isnan(err)) {
        e.max_abs_err = std::numeric_limits<double>::quiet_NaN();
      } else if (!std::isnan(e.max_abs_err)) {
        e.max_abs_err = std::max(e.max_abs_err, err);
      }
      e.ref_max_abs = std::max(e.ref_max_abs, std::fabs(r));
      ++e.checked;
    }
  }
  e.max_rel_err = e.ref_max_abs > 0 ? e.max_abs_err / e.ref_max_abs : e.max_abs_err;
  return e;
}

int64_t PeakRssBytes() {
  struct rusage u;
  if (getrusage(RUSAGE_SELF, &u) != 0) return 0;
  return static_cast<int64_t>(u.ru_maxrss) * 1024;  // Linux reports KiB
}

}  // namespace fk

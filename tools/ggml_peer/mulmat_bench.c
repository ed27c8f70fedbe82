/* ggml's own CPU MUL_MAT timed for the sweep (//harness:sweep), as a peer measured in the
 * same run as this project's kernels.
 *
 * Built by tools/setup_ggml against the ggml headers and shared libraries that PyPI's
 * llama-cpp-python package installs (nothing of ggml lives in this tree).
 *
 * Protocol 4 (`mulmat_bench --protocol=4`, what //harness:sweep runs). The first line printed is
 *     {"protocol":4,"ggml_version":...,"ggml_commit":...,"extra_bufts":["AMX","CPU_REPACK"]}
 * extra_bufts: the CPU device's extra buffer types in the order llama.cpp tries them. Then it
 * reads cases from stdin, one per line:
 *     TYPE N K M THREADS REPS MIN_TIME_S COLD_BYTES CHECK_COLS LAYOUT WARMUP_S
 * TYPE as ggml names it (f32, q4_0, q4_K, ...); W is N rows of K (ggml: ne0 = K, ne1 = N),
 * the activations M rows of K in f32, output M x N. LAYOUT is where the weights go:
 *     auto    as llama.cpp places them: the first extra buffer type that takes MUL_MAT with
 *             these weights, else the plain CPU buffer
 *     NAME    the same, but starting the search at extra buffer type NAME (e.g. CPU_REPACK:
 *             "the next layout llama.cpp would use" after one that crashed)
 *     plain   the plain CPU buffer
 * Before a case runs it prints {"start":true,"type":...,"layout":"AMX"} (so a caller whose
 * peer dies knows which layout crashed), then one JSON object with the result, and flushes:
 *     {"type":"q4_K","n":4096,...,"layout":"CPU_REPACK","times_s":[...],"max_abs_err":...,
 *      "huge_pct":...}
 * or {"type":...,"error":"..."} for a case it rejects.
 *
 * With --protocol=3 (older sweeps sharing the cache's binary) a case line has no WARMUP_S;
 * without a --protocol flag it speaks protocol 2: the first line says "protocol":2, a case
 * line may omit LAYOUT (auto) as well, and no start lines are printed.
 *
 * What is measured by default is ggml as llama.cpp runs it: the CPU backend, weights placed
 * in the CPU backend's first extra buffer type that supports the type and shape (AMX tiles
 * where ggml was built with AMX; the repack buffer, which interleaves e.g. Q4_0 / Q4_K rows
 * for its GEMV/GEMM kernels), else in the plain CPU buffer; ggml_backend_graph_compute with
 * THREADS threads.
 *
 * Weights: random values quantized by ggml itself (64 distinct rows repeated to N rows: the
 * speed does not depend on the values). COLD_BYTES: enough copies of W are made that they
 * total at least this many bytes, and repetition r uses copy r % copies, so weights stream
 * from DRAM as in a forward pass over a whole model (as the sweep does for its own kernels).
 * Untimed warm-up calls (at least one, and until WARMUP_S seconds have passed; the sweep
 * gives its own kernels the same warm-up), then at least REPS calls are timed, and more
 * until MIN_TIME_S seconds have passed (at most 1000 of each).
 *
 * Error: CHECK_COLS output columns (evenly spaced, plus the last one) of every row are
 * compared with a float64 reference computed from ggml's own dequantization (to_float) of
 * the weights: max_abs_err = max |y - ref|, max_rel_err = max_abs_err / max |ref|.
 */
#define _GNU_SOURCE /* madvise, MADV_HUGEPAGE */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <time.h>

#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "ggml.h"

/* The weight buffer is advised for 2 MB pages (MADV_HUGEPAGE) before the weights are written
 * into it, as the sweep's own weight copies are (kernels/pages.h): on a virtual machine,
 * streams from 4 KB pages were measured 10 % slower. Only the 2 MB-aligned part can be backed
 * so; huge_pct reports how much was (from /proc/self/smaps). */
static void advise_huge_pages(uintptr_t base, size_t size) {
  const uintptr_t huge = (uintptr_t)2 << 20;
  const uintptr_t lo = (base + huge - 1) / huge * huge, hi = (base + size) / huge * huge;
  if (hi > lo) madvise((void *)lo, hi - lo, MADV_HUGEPAGE); /* a hint */
}

/* Percent of [base, base + size) in transparent huge pages: each mapping's AnonHugePages,
 * prorated by its overlap with the range. -1 when /proc/self/smaps cannot be read. */
static double huge_page_pct(uintptr_t base, size_t size) {
  FILE *f = fopen("/proc/self/smaps", "r");
  if (f == NULL || size == 0) {
    if (f != NULL) fclose(f);
    return -1;
  }
  char line[512];
  unsigned long long lo = 0, hi = 0;
  double huge = 0;
  while (fgets(line, sizeof line, f) != NULL) {
    unsigned long long a, b;
    long long kb;
    int used = 0;
    if (sscanf(line, "%llx-%llx %n", &a, &b, &used) == 2 && used > 0) {
      lo = a;
      hi = b;
    } else if (sscanf(line, "AnonHugePages: %lld kB", &kb) == 1 && kb > 0 && hi > lo) {
      const unsigned long long b0 = lo > base ? lo : base;
      const unsigned long long e0 = hi < base + size ? hi : base + size;
      if (e0 > b0) huge += (double)kb * 1024.0 * (double)(e0 - b0) / (double)(hi - lo);
    }
  }
  fclose(f);
  return 100.0 * huge / (double)size;
}

static int protocol = 2; /* what the caller speaks: 2, or 3 / 4 by --protocol=N */
#define DISTINCT_ROWS 64
#define MAX_REPS 1000

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int find_type(const char *name, enum ggml_type *out) {
  for (int t = 0; t < GGML_TYPE_COUNT; ++t) {
    const char *tn = ggml_type_name((enum ggml_type)t);
    if (tn != NULL && strcasecmp(tn, name) == 0) {
      *out = (enum ggml_type)t;
      return 1;
    }
  }
  return 0;
}

static uint32_t rng_state = 12345u;
static float rand_normalish(void) { /* sum of uniforms: cheap, deterministic */
  float s = 0.0f;
  for (int i = 0; i < 4; ++i) {
    rng_state = rng_state * 1664525u + 1013904223u;
    s += (float)(rng_state >> 8) / 16777216.0f - 0.5f;
  }
  return s * 0.05f;
}

static void print_error(const char *type, long n, long k, long m, int threads, const char *msg) {
  printf("{\"type\":\"%s\",\"n\":%ld,\"k\":%ld,\"m\":%ld,\"threads\":%d,\"error\":\"%s\"}\n", type, n,
         k, m, threads, msg);
  fflush(stdout);
}

/* The CPU device's extra buffer types, NULL-terminated (NULL when it has none). */
static ggml_backend_buffer_type_t *extra_bufts(ggml_backend_t backend) {
  static ggml_backend_buffer_type_t none[1] = {NULL};
  ggml_backend_dev_t dev = ggml_backend_get_device(backend);
  ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(dev);
  ggml_backend_dev_get_extra_bufts_t get_extra =
      (ggml_backend_dev_get_extra_bufts_t)ggml_backend_reg_get_proc_address(
          reg, "ggml_backend_dev_get_extra_bufts");
  ggml_backend_buffer_type_t *bufts = get_extra != NULL ? get_extra(dev) : NULL;
  return bufts != NULL ? bufts : none;
}

/* The first extra buffer type of the CPU device, from the one named `start` on (NULL or
 * "auto": from the first), that supports MUL_MAT with `w` as weights, or NULL (the plain
 * buffer). Asks the device with a probe op, as llama.cpp does when it places weights.
 * *unknown is set when `start` names no extra buffer type. */
static ggml_backend_buffer_type_t extra_buft_for(ggml_backend_t backend, enum ggml_type type,
                                                 long n, long k, const char *start,
                                                 int *unknown) {
  ggml_backend_dev_t dev = ggml_backend_get_device(backend);
  ggml_backend_buffer_type_t *bufts = extra_bufts(backend);
  *unknown = 0;
  if (start != NULL && strcasecmp(start, "auto") != 0) {
    while (*bufts != NULL && strcasecmp(ggml_backend_buft_name(*bufts), start) != 0) ++bufts;
    if (*bufts == NULL) {
      *unknown = 1;
      return NULL;
    }
  }
  struct ggml_init_params params = {3 * ggml_tensor_overhead(), NULL, true};
  ggml_backend_buffer_type_t found = NULL;
  for (; *bufts != NULL && found == NULL; ++bufts) {
    struct ggml_context *ctx = ggml_init(params);
    struct ggml_tensor *w = ggml_new_tensor_2d(ctx, type, k, n);
    struct ggml_tensor *x = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, k, 1);
    struct ggml_tensor *y = ggml_mul_mat(ctx, w, x);
    ggml_backend_buffer_t probe = ggml_backend_buft_alloc_buffer(*bufts, 0);
    w->buffer = probe;
    if (probe != NULL && ggml_backend_dev_supports_op(dev, y)) found = *bufts;
    w->buffer = NULL;
    if (probe != NULL) ggml_backend_buffer_free(probe);
    ggml_free(ctx);
  }
  return found;
}

static int run_case(ggml_backend_t backend, const char *type_name, long n, long k, long m,
                    int threads, int reps, double min_time, double cold_bytes, int check_cols,
                    const char *want_layout, double warmup_time) {
  enum ggml_type type;
  if (!find_type(type_name, &type)) {
    print_error(type_name, n, k, m, threads, "unknown ggml type");
    return 1;
  }
  const struct ggml_type_traits *tt = ggml_get_type_traits(type);
  if (type != GGML_TYPE_F32 && (tt->to_float == NULL || ggml_get_type_traits_cpu(type)->vec_dot == NULL)) {
    print_error(type_name, n, k, m, threads, "ggml has no CPU matmul for this weight type");
    return 1;
  }
  if (k % ggml_blck_size(type) != 0) {
    print_error(type_name, n, k, m, threads, "k is not a multiple of the type's block");
    return 1;
  }
  const size_t row_bytes = ggml_row_size(type, k);
  const size_t w_bytes = row_bytes * (size_t)n;
  long copies = (long)ceil(cold_bytes / (double)w_bytes);
  if (copies < 1) copies = 1;

  /* 64 distinct rows quantized by ggml, kept on the host for the reference. */
  const long drows = n < DISTINCT_ROWS ? n : DISTINCT_ROWS;
  float *src = malloc(sizeof(float) * (size_t)(drows * k));
  uint8_t *qrows = malloc(row_bytes * (size_t)drows);
  for (long i = 0; i < drows * k; ++i) src[i] = rand_normalish();
  if (type == GGML_TYPE_F32) {
    memcpy(qrows, src, sizeof(float) * (size_t)(drows * k));
  } else {
    ggml_quantize_chunk(type, src, qrows, 0, drows, k, NULL);
  }
  uint8_t *full = malloc(w_bytes);
  for (long r = 0; r < n; ++r) memcpy(full + (size_t)r * row_bytes, qrows + (size_t)(r % drows) * row_bytes, row_bytes);

  ggml_backend_buffer_type_t wbuft = NULL;
  if (strcasecmp(want_layout, "plain") != 0) {
    int unknown = 0;
    wbuft = extra_buft_for(backend, type, n, k, want_layout, &unknown);
    if (unknown) {
      char msg[160];
      snprintf(msg, sizeof msg, "unknown layout %.40s (auto, plain or an extra buffer type of this ggml)",
               want_layout);
      print_error(type_name, n, k, m, threads, msg);
      free(full);
      free(qrows);
      free(src);
      return 1;
    }
  }
  const char *layout = wbuft != NULL ? ggml_backend_buft_name(wbuft) : "plain";
  if (wbuft == NULL) wbuft = ggml_backend_cpu_buffer_type();
  /* Announced before anything touches the buffer: if ggml crashes from here on, the caller
   * knows in which layout. */
  if (protocol >= 3) printf("{\"start\":true,\"type\":\"%s\",\"n\":%ld,\"k\":%ld,\"m\":%ld,\"threads\":%d,"
         "\"layout\":\"%s\"}\n",
         ggml_type_name(type), n, k, m, threads, layout);
  fflush(stdout);

  /* Weights: one context of `copies` tensors in wbuft (set_tensor repacks when it is the
   * repack buffer). */
  struct ggml_init_params wp = {(size_t)(copies + 1) * ggml_tensor_overhead(), NULL, true};
  struct ggml_context *wctx = ggml_init(wp);
  struct ggml_tensor **w = malloc(sizeof(*w) * (size_t)copies);
  for (long c = 0; c < copies; ++c) w[c] = ggml_new_tensor_2d(wctx, type, k, n);
  ggml_backend_buffer_t wbuf = ggml_backend_alloc_ctx_tensors_from_buft(wctx, wbuft);
  if (wbuf == NULL) {
    print_error(type_name, n, k, m, threads, "could not allocate the weights");
    return 1;
  }
  ggml_backend_buffer_set_usage(wbuf, GGML_BACKEND_BUFFER_USAGE_WEIGHTS);
  const uintptr_t wbase = (uintptr_t)ggml_backend_buffer_get_base(wbuf);
  const size_t wsize = ggml_backend_buffer_get_size(wbuf);
  advise_huge_pages(wbase, wsize);
  for (long c = 0; c < copies; ++c) ggml_backend_tensor_set(w[c], full, 0, w_bytes);
  const double huge_pct = huge_page_pct(wbase, wsize);

  /* Activations, outputs and one graph per weight copy. */
  struct ggml_init_params cp = {
      (size_t)(2 * copies + 2) * ggml_tensor_overhead() + (size_t)copies * ggml_graph_overhead() + 4096,
      NULL, true};
  struct ggml_context *ctx = ggml_init(cp);
  struct ggml_tensor *x = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, k, m);
  struct ggml_tensor **y = malloc(sizeof(*y) * (size_t)copies);
  struct ggml_cgraph **gf = malloc(sizeof(*gf) * (size_t)copies);
  for (long c = 0; c < copies; ++c) {
    y[c] = ggml_mul_mat(ctx, w[c], x);
    gf[c] = ggml_new_graph(ctx);
    ggml_build_forward_expand(gf[c], y[c]);
  }
  ggml_backend_buffer_t iobuf = ggml_backend_alloc_ctx_tensors_from_buft(ctx, ggml_backend_cpu_buffer_type());
  if (iobuf == NULL) {
    print_error(type_name, n, k, m, threads, "could not allocate activations/outputs");
    return 1;
  }
  float *xd = malloc(sizeof(float) * (size_t)(m * k));
  for (long i = 0; i < m * k; ++i) xd[i] = rand_normalish() * 20.0f;
  ggml_backend_tensor_set(x, xd, 0, sizeof(float) * (size_t)(m * k));
  ggml_backend_cpu_set_n_threads(backend, threads);

  /* Warm-up and timed calls cycle the copies as one sequence. */
  long call = 0;
  const double warm_start = now_s();
  for (int w = 0; w < MAX_REPS && (w < 1 || now_s() - warm_start < warmup_time); ++w) {
    ggml_backend_graph_compute(backend, gf[call++ % copies]);
  }
  double *times = malloc(sizeof(double) * MAX_REPS);
  int done = 0;
  const double start = now_s();
  while (done < MAX_REPS && (done < reps || now_s() - start < min_time)) {
    const double t0 = now_s();
    ggml_backend_graph_compute(backend, gf[call++ % copies]);
    times[done++] = now_s() - t0;
  }
  const long last = (call - 1) % copies;

  /* Error of the last output against float64 over ggml's own dequantized rows. */
  float *out = malloc(sizeof(float) * (size_t)(m * n));
  ggml_backend_tensor_get(y[last], out, 0, sizeof(float) * (size_t)(m * n));
  float *deq = malloc(sizeof(float) * (size_t)k);
  double max_abs_err = 0, max_ref = 0, checksum = 0;
  int cols = check_cols < n ? check_cols : (int)n;
  if (cols < 1) cols = 1;
  for (int c = 0; c < cols; ++c) {
    const long j = cols == 1 ? n - 1 : (long)((double)c * (double)(n - 1) / (double)(cols - 1));
    const uint8_t *row = qrows + (size_t)(j % drows) * row_bytes;
    if (type == GGML_TYPE_F32) {
      memcpy(deq, row, sizeof(float) * (size_t)k);
    } else {
      tt->to_float(row, deq, k);
    }
    for (long i = 0; i < m; ++i) {
      double ref = 0;
      for (long q = 0; q < k; ++q) ref += (double)xd[i * k + q] * (double)deq[q];
      const double got = out[i * n + j];
      const double err = fabs(got - ref);
      if (!(err <= max_abs_err)) max_abs_err = err; /* NaN propagates */
      if (fabs(ref) > max_ref) max_ref = fabs(ref);
    }
  }
  for (long i = 0; i < m * n; ++i) checksum += out[i];

  printf("{\"type\":\"%s\",\"n\":%ld,\"k\":%ld,\"m\":%ld,\"threads\":%d,\"layout\":\"%s\","
         "\"weight_bytes\":%zu,\"copies\":%ld,\"times_s\":[",
         ggml_type_name(type), n, k, m, threads, layout, w_bytes, copies);
  for (int r = 0; r < done; ++r) printf("%s%.9f", r ? "," : "", times[r]);
  if (isnan(max_abs_err)) {
    printf("],\"max_abs_err\":null,\"max_rel_err\":null");
  } else {
    printf("],\"max_abs_err\":%.6g,\"max_rel_err\":%.6g", max_abs_err,
           max_ref > 0 ? max_abs_err / max_ref : 0.0);
  }
  if (huge_pct >= 0) printf(",\"huge_pct\":%.1f", huge_pct);
  printf(",\"checked_cols\":%d,\"checksum\":%.6g}\n", cols, checksum);
  fflush(stdout);

  free(deq);
  free(out);
  free(times);
  free(xd);
  ggml_backend_buffer_free(iobuf);
  ggml_free(ctx);
  free(gf);
  free(y);
  ggml_backend_buffer_free(wbuf);
  ggml_free(wctx);
  free(w);
  free(full);
  free(qrows);
  free(src);
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--protocol=4") == 0) {
    protocol = 4;
  } else if (argc > 1 && strcmp(argv[1], "--protocol=3") == 0) {
    protocol = 3;
  } else if (argc > 1) {
    fprintf(stderr,
            "usage: mulmat_bench --protocol=4 < cases\n"
            "  one case per line: TYPE N K M THREADS REPS MIN_TIME_S COLD_BYTES CHECK_COLS LAYOUT"
            " WARMUP_S\n"
            "  LAYOUT: auto (as llama.cpp), plain, or an extra buffer type to start from\n"
            "  (the first line printed lists them as extra_bufts)\n"
            "  e.g. echo 'q4_K 4096 4096 1 2 5 0.05 134217728 64 auto 0.1' | mulmat_bench"
            " --protocol=4\n"
            "  (--protocol=3: no WARMUP_S; no flag: protocol 2, LAYOUT optional too)\n");
    return strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ? 0 : 2;
  }
  ggml_cpu_init();
  ggml_backend_t backend = ggml_backend_cpu_init();
  if (backend == NULL) {
    fprintf(stderr, "mulmat_bench: ggml_backend_cpu_init failed\n");
    return 2;
  }
  printf("{\"protocol\":%d,\"ggml_version\":\"%s\",\"ggml_commit\":\"%s\",\"extra_bufts\":[",
         protocol, ggml_version(), ggml_commit());
  ggml_backend_buffer_type_t *bufts = extra_bufts(backend);
  for (int i = 0; bufts[i] != NULL; ++i) printf("%s\"%s\"", i ? "," : "", ggml_backend_buft_name(bufts[i]));
  printf("]}\n");
  fflush(stdout);
  char line[512], type_name[32], layout[48];
  long n, k, m;
  int threads, reps, check_cols, failures = 0;
  double min_time, cold_bytes, warmup_time;
  while (fgets(line, sizeof line, stdin) != NULL) {
    if (strspn(line, " \t\r\n") == strlen(line)) continue;
    strcpy(layout, "auto");
    warmup_time = 0;
    const int fields =
        sscanf(line, "%31s %ld %ld %ld %d %d %lf %lf %d %47s %lf", type_name, &n, &k, &m, &threads,
               &reps, &min_time, &cold_bytes, &check_cols, layout, &warmup_time);
    const int want = protocol >= 4 ? 11 : 10;
    if (fields != want && !(protocol == 2 && fields == 9)) {
      print_error("?", 0, 0, 0, 0,
                  protocol >= 4 ? "expected TYPE N K M THREADS REPS MIN_TIME_S COLD_BYTES "
                                  "CHECK_COLS LAYOUT WARMUP_S"
                                : "expected TYPE N K M THREADS REPS MIN_TIME_S COLD_BYTES "
                                  "CHECK_COLS LAYOUT");
      ++failures;
      continue;
    }
    if (n < 1 || k < 1 || m < 1 || threads < 1 || reps < 1) {
      print_error(type_name, n, k, m, threads, "n, k, m, threads and reps must be positive");
      ++failures;
      continue;
    }
    failures += run_case(backend, type_name, n, k, m, threads, reps, min_time, cold_bytes,
                         check_cols, layout, warmup_time);
  }
  ggml_backend_free(backend);
  return failures ? 1 : 0;
}

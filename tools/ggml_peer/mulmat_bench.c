/* ggml's own CPU MUL_MAT timed for the sweep, as a peer measured in the same run.
 *
 * Built by tools/setup_ggml against the ggml headers and shared libraries that PyPI's
 * llama-cpp-python package installs (nothing of ggml lives in this tree). Reads cases from
 * stdin, one per line:   TYPE N K M THREADS REPS
 * (TYPE as ggml names it: f32, q4_0, q4_K, ...) and prints one JSON object per case:
 *   {"type":"q4_K","n":4096,"k":4096,"m":1,"threads":2,"times_s":[...]}
 * Weights are random values quantized by ggml itself (a block of rows, repeated to n rows:
 * the kernel's speed does not depend on the values); activations are random f32.
 * The first line printed is {"ggml_version": ..., "ggml_commit": ...}.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ggml-cpu.h"
#include "ggml.h"

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

static int run_case(const char *type_name, long n, long k, long m, int threads, int reps) {
  enum ggml_type type;
  if (!find_type(type_name, &type)) {
    printf("{\"type\":\"%s\",\"error\":\"unknown ggml type\"}\n", type_name);
    return 1;
  }
  const size_t row_bytes = ggml_row_size(type, k);
  const size_t w_bytes = row_bytes * (size_t)n;
  const size_t mem = w_bytes + (size_t)(m * k + m * n) * sizeof(float) + 16 * 1024 * 1024;
  struct ggml_init_params params = {mem, NULL, false};
  struct ggml_context *ctx = ggml_init(params);
  if (ctx == NULL) {
    printf("{\"type\":\"%s\",\"error\":\"ggml_init failed for %zu bytes\"}\n", type_name, mem);
    return 1;
  }
  struct ggml_tensor *w = ggml_new_tensor_2d(ctx, type, k, n);
  struct ggml_tensor *x = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, k, m);

  /* Quantize a block of rows with ggml, then repeat it over all n rows. */
  const long block_rows = n < 64 ? n : 64;
  float *src = malloc(sizeof(float) * (size_t)(block_rows * k));
  for (long i = 0; i < block_rows * k; ++i) src[i] = rand_normalish();
  if (type == GGML_TYPE_F32) {
    memcpy(w->data, src, sizeof(float) * (size_t)(block_rows * k));
  } else {
    ggml_quantize_chunk(type, src, w->data, 0, block_rows, k, NULL);
  }
  for (long r = block_rows; r < n; ++r) {
    memcpy((char *)w->data + (size_t)r * row_bytes, (char *)w->data + (size_t)(r % block_rows) * row_bytes, row_bytes);
  }
  free(src);
  float *xd = (float *)x->data;
  for (long i = 0; i < m * k; ++i) xd[i] = rand_normalish() * 20.0f;

  struct ggml_tensor *y = ggml_mul_mat(ctx, w, x);
  struct ggml_cgraph *gf = ggml_new_graph(ctx);
  ggml_build_forward_expand(gf, y);

  ggml_graph_compute_with_ctx(ctx, gf, threads); /* warm-up */
  printf("{\"type\":\"%s\",\"n\":%ld,\"k\":%ld,\"m\":%ld,\"threads\":%d,\"weight_bytes\":%zu,\"times_s\":[",
         ggml_type_name(type), n, k, m, threads, w_bytes);
  for (int r = 0; r < reps; ++r) {
    const double t0 = now_s();
    ggml_graph_compute_with_ctx(ctx, gf, threads);
    printf("%s%.9f", r ? "," : "", now_s() - t0);
  }
  /* A checksum so the work cannot be optimized away and results can be eyeballed. */
  double sum = 0;
  const float *yd = (const float *)y->data;
  for (long i = 0; i < m * n; ++i) sum += yd[i];
  printf("],\"checksum\":%.6g}\n", sum);
  fflush(stdout);
  ggml_free(ctx);
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
    fprintf(stderr, "usage: mulmat_bench < cases   (lines: TYPE N K M THREADS REPS)\n");
    return 0;
  }
  ggml_cpu_init();
  printf("{\"ggml_version\":\"%s\",\"ggml_commit\":\"%s\"}\n", ggml_version(), ggml_commit());
  fflush(stdout);
  char type_name[32];
  long n, k, m;
  int threads, reps, failures = 0;
  while (scanf("%31s %ld %ld %ld %d %d", type_name, &n, &k, &m, &threads, &reps) == 6) {
    failures += run_case(type_name, n, k, m, threads, reps);
  }
  return failures ? 1 : 0;
}

#include "kernels/cpu_features.h"

#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "kernels/kernel_api.h"

namespace fk {
namespace {

// XCR0 bits: which register state the OS saves on context switch.
constexpr uint64_t kXcr0SseAvx = (1u << 1) | (1u << 2);              // XMM, YMM upper halves
constexpr uint64_t kXcr0Avx512 = (1u << 5) | (1u << 6) | (1u << 7);  // opmask, ZMM0-15 upper, ZMM16-31
constexpr uint64_t kXcr0Amx = (1u << 17) | (1u << 18);               // XTILECFG, XTILEDATA

// Linux keeps the AMX tile data out of a process's state until it asks (arch/x86 uapi:
// ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA); the first tile instruction without it is SIGILL.
// The permission is the process's, for all its threads. Older kernels answer EINVAL: no AMX.
bool request_amx_permission() {
#ifdef __linux__
  constexpr long kArchReqXcompPerm = 0x1023;
  constexpr long kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

uint64_t read_xcr0() {
  uint32_t eax, edx;
  // xgetbv with ecx = 0; spelled as asm so this file needs no -mxsave.
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

uint32_t probe() {
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return kCpuNone;
  const bool osxsave = ecx & (1u << 27);
  const bool avx = ecx & (1u << 28);
  const bool fma = ecx & (1u << 12);
  const bool f16c = ecx & (1u << 29);
  // Without OSXSAVE the OS does not save YMM/ZMM state: no AVX-family feature is usable.
  if (!osxsave || !avx) return kCpuNone;
  const uint64_t xcr0 = read_xcr0();
  if ((xcr0 & kXcr0SseAvx) != kXcr0SseAvx) return kCpuNone;

  uint32_t f = kCpuNone;
  if (fma) f |= kCpuFma;
  if (f16c) f |= kCpuF16c;
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return f;
  if (ebx & (1u << 5)) f |= kCpuAvx2;
  if ((xcr0 & kXcr0Avx512) == kXcr0Avx512) {
    if (ebx & (1u << 16)) f |= kCpuAvx512F;
    if (ebx & (1u << 17)) f |= kCpuAvx512DQ;
    if (ebx & (1u << 30)) f |= kCpuAvx512BW;
    if (ebx & (1u << 31)) f |= kCpuAvx512VL;
    if (ecx & (1u << 11)) f |= kCpuAvx512Vnni;
    if (edx & (1u << 23)) f |= kCpuAvx512Fp16;
    unsigned eax1, ebx1, ecx1, edx1;  // leaf 7, sub-leaf 1: EAX bit 5 = AVX512_BF16
    if (eax >= 1 && __get_cpuid_count(7, 1, &eax1, &ebx1, &ecx1, &edx1) && (eax1 & (1u << 5)))
      f |= kCpuAvx512Bf16;
  }
  // AMX (leaf 7 EDX bit 24 AMX-TILE, bit 25 AMX-INT8): the CPU has it, the OS saves the tile
  // state (XCR0), and this process may use it (the permission, asked for once, here).
  const bool amx_tile = edx & (1u << 24), amx_int8 = edx & (1u << 25);
  if (amx_tile && amx_int8 && (xcr0 & kXcr0Amx) == kXcr0Amx && request_amx_permission())
    f |= kCpuAmxTile | kCpuAmxInt8;
  return f;
}

struct FeatureName {
  uint32_t bit;
  const char* name;
};
constexpr FeatureName kNames[] = {
    {kCpuAvx2, "avx2"},         {kCpuFma, "fma"},           {kCpuF16c, "f16c"},
    {kCpuAvx512F, "avx512f"},   {kCpuAvx512BW, "avx512bw"}, {kCpuAvx512DQ, "avx512dq"},
    {kCpuAvx512VL, "avx512vl"}, {kCpuAvx512Vnni, "avx512vnni"}, {kCpuAvx512Bf16, "avx512bf16"},
    {kCpuAvx512Fp16, "avx512fp16"}, {kCpuAmxTile, "amxtile"},     {kCpuAmxInt8, "amxint8"},
};

// The features that need `bit` (disabling it must disable them too).
uint32_t dependents(uint32_t bit) {
  constexpr uint32_t kAvx512All =
      (kFeaturesAmx | kFeaturesAvx512Bf16 | kFeaturesAvx512Fp16) & ~kFeaturesAvx2;
  switch (bit) {
    case kCpuAvx2:
    case kCpuFma:
    case kCpuF16c:
      return bit | kAvx512All;
    case kCpuAvx512F:
    case kCpuAvx512BW:
    case kCpuAvx512DQ:
    case kCpuAvx512VL:
      return bit | kAvx512All;  // the registry's AVX-512 rows need all four
    case kCpuAvx512Vnni:
    case kCpuAmxTile:
      return bit | kCpuAmxTile | kCpuAmxInt8;  // the amx rows need VNNI; AMX-INT8 needs tiles
    default:
      return bit;
  }
}

uint32_t close_under_dependents(uint32_t mask) {
  uint32_t out = mask;
  for (const FeatureName& n : kNames)
    if (mask & n.bit) out |= dependents(n.bit);
  return out;
}

uint32_t disabled_from_env() {
  const char* env = std::getenv("FK_DISABLE_CPU_FEATURES");
  if (env == nullptr) return 0;
  uint32_t mask = 0;
  std::string list(env);
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find(',', start);
    if (end == std::string::npos) end = list.size();
    const std::string name = list.substr(start, end - start);
    if (name == "all") {
      mask |= ~0u;
    } else if (!name.empty()) {
      const uint32_t bit = cpu_feature_by_name(name);
      if (bit == kCpuNone) {
        std::fprintf(stderr,
                     "FK_DISABLE_CPU_FEATURES: unknown feature '%s' ignored (known: %s)\n",
                     name.c_str(), cpu_feature_names(~0u).c_str());
      }
      mask |= bit;
    }
    start = end + 1;
  }
  return close_under_dependents(mask);
}

std::atomic<uint32_t>& disabled() {
  static std::atomic<uint32_t> mask{disabled_from_env()};
  return mask;
}

}  // namespace

uint32_t detected_cpu_features() {
  static const uint32_t features = probe();  // thread-safe static initialization
  return features;
}

uint32_t cpu_features() {
  return detected_cpu_features() & ~disabled().load(std::memory_order_relaxed);
}

void set_disabled_cpu_features_for_testing(uint32_t mask) {
  disabled().store(close_under_dependents(mask), std::memory_order_relaxed);
}

uint32_t disabled_cpu_features() { return disabled().load(std::memory_order_relaxed); }

uint32_t cpu_feature_by_name(const std::string& name) {
  for (const FeatureName& n : kNames)
    if (name == n.name) return n.bit;
  return kCpuNone;
}

const std::string& cpu_vendor() {
  static const std::string* vendor = [] {
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx)) return new std::string();
    char v[13];
    std::memcpy(v, &ebx, 4);
    std::memcpy(v + 4, &edx, 4);
    std::memcpy(v + 8, &ecx, 4);
    v[12] = '\0';
    return new std::string(v);
  }();
  return *vendor;
}

bool cpu_has(uint32_t required) { return (cpu_features() & required) == required; }

std::string cpu_feature_names(uint32_t mask) {
  std::string out;
  for (const FeatureName& n : kNames) {
    if (!(mask & n.bit)) continue;
    if (!out.empty()) out += ", ";
    out += n.name;
  }
  return out;
}

std::string missing_cpu_features(uint32_t required) {
  return cpu_feature_names(required & ~cpu_features());
}

}  // namespace fk

#include "kernels/pages.h"

#include <sys/mman.h>

#include <cstdint>

namespace fk {

std::shared_ptr<unsigned char> AllocateHugePages(size_t size) {
  if (size == 0) size = 1;
  const size_t rounded = (size + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
  const size_t mapped = rounded + kHugePageBytes;  // room to move the start to a boundary
  void* raw = ::mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  auto* data = reinterpret_cast<unsigned char*>((start + kHugePageBytes - 1) / kHugePageBytes *
                                                kHugePageBytes);
  ::madvise(data, rounded, MADV_HUGEPAGE);  // a hint; fails harmlessly without THP
  std::shared_ptr<unsigned char> mapping(static_cast<unsigned char*>(raw),
                                         [mapped](unsigned char* p) { ::munmap(p, mapped); });
  return std::shared_ptr<unsigned char>(mapping, data);  // owns the mapping, points at data
}

}  // namespace fk

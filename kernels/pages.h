// Memory in 2 MB pages for bytes that are streamed: weights and bandwidth probes.
//
// Why: on the Intel Xeon guests seen (2026-12-06) a plain read of 1 GB from 2 threads ran
// at 28.3-28.5 GB/s from 2 MB pages and 25.3-25.6 GB/s from 4 KB pages (1 thread: 14.7-14.9
// against 13.0-13.3), and the fused kernels gained about as much. The runtime reads model
// files into such pages (runtime/gguf.h, GgufLoad::kHugePages), so the sweep, kernel_bench
// and the DRAM probe stream from them too.
#ifndef KERNELS_PAGES_H_
#define KERNELS_PAGES_H_

#include <cstddef>
#include <memory>

namespace fk {

constexpr size_t kHugePageBytes = size_t{2} << 20;

// `size` bytes (at least 1) of anonymous, zero-filled memory that starts on a 2 MB boundary
// and is advised for transparent huge pages (MADV_HUGEPAGE) before anything touches it.
// Whether the kernel backs it with 2 MB pages is its choice (transparent_hugepage "never":
// plain pages); ask HugePageBytes (harness/machine.h) after touching it. Null if the
// mapping fails. The memory is unmapped when the last copy of the pointer goes.
std::shared_ptr<unsigned char> AllocateHugePages(size_t size);

}  // namespace fk

#endif  // KERNELS_PAGES_H_

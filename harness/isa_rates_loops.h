// The loops of //harness:isa_rates (harness/isa_rates_main.cc): groups of independent 512-bit
// instructions. Built with AVX-512 (F, BW, VL) and VNNI flags: call only where the CPU has them.
#ifndef HARNESS_ISA_RATES_LOOPS_H_
#define HARNESS_ISA_RATES_LOOPS_H_

#include <cstdint>
#include <vector>

namespace fk {

struct IsaLoop {
  const char* name;  // the instructions of one group, e.g. "vpdpbusd + vpshufb"
  int ops;           // instructions per iteration
  int copies;        // of which register copies
  void (*run)(int64_t iters);
};

const std::vector<IsaLoop>& isa_loops();

}  // namespace fk

#endif  // HARNESS_ISA_RATES_LOOPS_H_

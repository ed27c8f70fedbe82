// generate: runs a llama or gemma3 GGUF model on the fused kernels.
//   tools/bazel run //runtime:generate -- --model=PATH --prompt=TEXT [--chat] ...
// See --help, or runtime/generate_cli.cc.
#include <iostream>
#include <string>
#include <vector>

#include "runtime/generate_cli.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return fk::RunGenerate(args, std::cout, std::cerr);
}

// The `generate` command line: flags, loading, prompt, generation loop and stats line.
// Kept apart from main() so tests run it in-process with their own streams.
#ifndef RUNTIME_GENERATE_CLI_H_
#define RUNTIME_GENERATE_CLI_H_

#include <ostream>
#include <string>
#include <vector>

namespace fk {

// Exit codes: 0 success (also --help), 2 any bad input (flag, file, model) or failure,
// with one line "generate: <what was wrong>" on `err`.
constexpr int kExitBadInput = 2;

// `args` are the arguments after the program name. Generated text streams to `out`;
// progress and the final stats line go to `err`.
int RunGenerate(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// The usage text of --help.
std::string GenerateUsage();

}  // namespace fk

#endif  // RUNTIME_GENERATE_CLI_H_

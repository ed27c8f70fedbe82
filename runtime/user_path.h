// Paths typed on a `bazel run` command line. Bazel starts the binary in its runfiles tree
// and passes the user's directory in BUILD_WORKING_DIRECTORY, so a relative path is taken
// from there; without that variable (the binary run directly) the path is used as is.
#ifndef RUNTIME_USER_PATH_H_
#define RUNTIME_USER_PATH_H_

#include <string>

namespace fk {

std::string UserPath(const std::string& path);

}  // namespace fk

#endif  // RUNTIME_USER_PATH_H_

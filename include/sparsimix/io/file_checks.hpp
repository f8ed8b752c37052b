// Checks on the paths a command is given, made before any work so that a bad path fails in
// the first second with a message naming it (not after hours of training, and not as
// std::bad_alloc from reading a directory as if it were a file).
#pragma once
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/error.hpp"

namespace sparsimix::io {
SPARSIMIX_ABI_BEGIN

// Throws io_error unless `path` names an existing regular file (symlinks followed); `what`
// says what it should be ("checkpoint", "config file").
inline void require_input_file(const std::string& path, std::string_view what) {
  using sparsimix::detail::concat;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw io_error(concat("cannot open ", what, " '", path, "': ", std::strerror(errno)));
  if (S_ISDIR(st.st_mode)) throw io_error(concat(what, " '", path, "' is a directory, expected a file"));
  if (!S_ISREG(st.st_mode)) throw io_error(concat(what, " '", path, "' is not a regular file"));
}

// Throws io_error unless a file can be created or replaced at `path`: its folder exists and
// is writable, and `path` is not a folder. `option` names the command-line option.
inline void require_output_file(const std::string& path, std::string_view option) {
  namespace fs = std::filesystem;
  using sparsimix::detail::concat;
  if (path.empty()) throw config_error(concat(option, " is empty, expected a file name"));
  const fs::path p(path);
  std::error_code ec;
  if (fs::is_directory(p, ec)) throw io_error(concat(option, " '", path, "' is a directory, expected a file name"));
  const fs::path dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  if (!fs::is_directory(dir, ec))
    throw io_error(concat(option, " '", path, "': the folder '", dir.string(), "' does not exist"));
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    throw io_error(concat(option, " '", path, "': cannot write into '", dir.string(), "': ", std::strerror(errno)));
}

// Throws io_error unless the folder `dir` exists and is writable, or can be created (its
// nearest existing ancestor is a writable folder). Creates nothing: bad input writes nothing.
inline void require_output_folder(const std::string& dir, std::string_view option) {
  namespace fs = std::filesystem;
  using sparsimix::detail::concat;
  if (dir.empty()) throw config_error(concat(option, " is empty, expected a folder"));
  std::error_code ec;
  fs::path p = fs::absolute(fs::path(dir), ec).lexically_normal();
  while (!fs::exists(p, ec)) {
    if (!p.has_parent_path() || p.parent_path() == p) break;
    p = p.parent_path();
  }
  if (!fs::is_directory(p, ec))
    throw io_error(concat(option, " '", dir, "': '", p.string(), "' exists and is not a folder"));
  if (::access(p.c_str(), W_OK | X_OK) != 0)
    throw io_error(concat(option, " '", dir, "': cannot write into '", p.string(), "': ", std::strerror(errno)));
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::io

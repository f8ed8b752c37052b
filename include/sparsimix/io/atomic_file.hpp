// Writes a file so that a reader sees either the old content or the complete new one:
// write to a temporary name beside the target, flush, then rename over it.
#pragma once
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <unistd.h>

#include "../core/error.hpp"

namespace sparsimix::io {
SPARSIMIX_ABI_BEGIN

// Calls write(std::ostream&) into a temporary file, then renames it to `path`.
// On any failure the temporary is removed and `path` is left untouched.
template <class Writer>
void write_file_atomically(const std::string& path, Writer&& write) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const fs::path tmp = target.parent_path() /
                       (target.filename().string() + ".tmp." + std::to_string(::getpid()));
  try {
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      if (!out) throw io_error(detail::concat("cannot open '", tmp.string(), "' for writing"));
      write(static_cast<std::ostream&>(out));
      out.flush();
      if (!out) throw io_error(detail::concat("writing '", tmp.string(), "' failed (disk full?)"));
    }
    std::error_code ec;
    fs::rename(tmp, target, ec);
    if (ec) throw io_error(detail::concat("cannot rename '", tmp.string(), "' to '", path, "': ", ec.message()));
  } catch (...) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw;
  }
}

// Writes `text` to `path` the same way.
inline void write_text_atomically(const std::string& path, const std::string& text) {
  write_file_atomically(path, [&](std::ostream& os) { os << text; });
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::io

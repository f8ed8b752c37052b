// Writes a file so that a reader sees either the old content or the complete new one, and so
// that what `path` names survives: write to a temporary name beside the target, flush and
// fsync it, give it the old file's mode, rename it over the target, fsync the folder.
//   - a symlink is followed: the file it points to is replaced, the link stays;
//   - a FIFO is written through (it has no content to lose);
//   - a character or block device is refused (as root, a rename over /dev/full deletes the
//     device node) unless SPARSIMIX_ALLOW_DEVICE_OUTPUT=1, then it is written through;
//   - a regular file with other hard links is rewritten in place once the complete new content
//     sits in the temporary (a rename would detach it from its other names): a failure before
//     that point leaves it untouched; a crash during the copy can leave it partial.
#pragma once
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/error.hpp"

namespace sparsimix::io {
SPARSIMIX_ABI_BEGIN

namespace detail {
using sparsimix::detail::concat;

inline bool device_output_allowed() {
  const char* v = std::getenv("SPARSIMIX_ALLOW_DEVICE_OUTPUT");
  return v && std::string_view(v) == "1";
}

// fsync(2) a file or folder by name; `what` names it in the error.
inline void fsync_path(const std::filesystem::path& p, bool folder) {
  const int fd = ::open(p.c_str(), (folder ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) throw io_error(concat("cannot open '", p.string(), "' to sync it: ", std::strerror(errno)));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  // Some file systems (and /proc-like ones) do not support fsync on folders: not an error.
  if (rc != 0 && !(folder && (err == EINVAL || err == EROFS)))
    throw io_error(concat("fsync of '", p.string(), "' failed: ", std::strerror(err)));
}

template <class Writer>
void write_through(const std::string& path, Writer& write) {
  std::ofstream out(path, std::ios::binary);
  if (!out) throw io_error(concat("cannot open '", path, "' for writing"));
  write(static_cast<std::ostream&>(out));
  out.flush();
  if (!out) throw io_error(concat("writing '", path, "' failed"));
}

// The temporary's content copied into `target` in place (hard links keep sharing it).
inline void copy_in_place(const std::filesystem::path& from, const std::filesystem::path& target) {
  std::ifstream in(from, std::ios::binary);
  std::ofstream out(target, std::ios::binary | std::ios::trunc);
  if (!in || !out) throw io_error(concat("cannot rewrite '", target.string(), "' in place"));
  errno = 0;
  out << in.rdbuf();
  out.flush();
  if (!out)
    throw io_error(concat("rewriting '", target.string(), "' in place failed: ", errno ? std::strerror(errno) : "write error"));
}
}  // namespace detail

// Calls write(std::ostream&) into a temporary file, then puts it in place of `path` (see the
// top of this file for symlinks, FIFOs, devices and hard links). On any failure the temporary
// is removed and `path` is left untouched.
template <class Writer>
void write_file_atomically(const std::string& path, Writer&& write) {
  namespace fs = std::filesystem;
  using detail::concat;
  std::error_code ec;
  // What the path names in the end (stat follows symlinks): /dev/stdout to a pipe is a FIFO.
  struct stat st {};
  const bool exists = ::stat(path.c_str(), &st) == 0;
  if (exists) {
    if (S_ISDIR(st.st_mode)) throw io_error(concat("'", path, "' is a directory, expected a file to write"));
    if (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)) return detail::write_through(path, write);
    if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
      if (!detail::device_output_allowed())
        throw io_error(concat("'", path, "' is a device, not a regular file; refusing to write to it ",
                              "(set SPARSIMIX_ALLOW_DEVICE_OUTPUT=1 to write through it)"));
      return detail::write_through(path, write);
    }
  }
  // A regular file (or none yet) behind a symlink: replace the file, keep the link.
  fs::path target(path);
  if (fs::is_symlink(fs::symlink_status(target, ec))) {
    target = fs::weakly_canonical(target, ec);
    if (ec) throw io_error(concat("cannot resolve the symlink '", path, "': ", ec.message()));
  }
  static std::atomic<unsigned> counter{0};
  const fs::path tmp = target.parent_path() / (target.filename().string() + ".tmp." + std::to_string(::getpid()) +
                                               "." + std::to_string(counter++));
  try {
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      if (!out) throw io_error(concat("cannot open '", tmp.string(), "' for writing"));
      errno = 0;
      write(static_cast<std::ostream&>(out));
      out.flush();
      if (!out) {
        // errno of the failed write (ENOSPC, EFBIG, EDQUOT, EIO): what the user can act on.
        const int err = errno;
        throw io_error(concat("writing '", path, "' failed: ", err ? std::strerror(err) : "write error",
                              exists ? "; the file that was there is unchanged" : "; nothing was written"));
      }
    }
    detail::fsync_path(tmp, false);
    if (exists && st.st_nlink > 1) {
      detail::copy_in_place(tmp, target);
      detail::fsync_path(target, false);
      fs::remove(tmp, ec);
      return;
    }
    if (exists) {
      // Keep the old file's permission bits and, where we may, its owner.
      if (::chmod(tmp.c_str(), st.st_mode & 07777) != 0)
        throw io_error(concat("cannot set the mode of '", tmp.string(), "': ", std::strerror(errno)));
      if (::chown(tmp.c_str(), st.st_uid, st.st_gid) != 0) {
        // Only root may give a file away: an ordinary user's own file keeps its owner anyway.
      }
    }
    fs::rename(tmp, target, ec);
    if (ec) throw io_error(concat("cannot rename '", tmp.string(), "' to '", target.string(), "': ", ec.message()));
  } catch (...) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw;
  }
  detail::fsync_path(target.parent_path().empty() ? fs::path(".") : target.parent_path(), true);
}

// Writes `text` to `path` the same way.
inline void write_text_atomically(const std::string& path, const std::string& text) {
  write_file_atomically(path, [&](std::ostream& os) { os << text; });
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::io

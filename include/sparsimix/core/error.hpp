// Typed errors. Messages start with where (Type::method, or function: for free functions)
// and name the tensor, the expected and the actual value, e.g.
//   shape_error: SelectiveScan::forward: x is [2, 197, 96], expected [*, *, 192]
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "../fwd.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// Base of every exception sparsimix throws on bad input.
class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// A tensor has the wrong rank or extents.
class shape_error : public error {
 public:
  // Prefixes the message with "shape_error: ".
  explicit shape_error(const std::string& what) : error("shape_error: " + what) {}
};
// A file or string does not follow its format (safetensors, JSON, IDX).
class format_error : public error {
 public:
  // Prefixes the message with "format_error: ".
  explicit format_error(const std::string& what) : error("format_error: " + what) {}
};
// A configuration value is invalid or inconsistent.
class config_error : public error {
 public:
  // Prefixes the message with "config_error: ".
  explicit config_error(const std::string& what) : error("config_error: " + what) {}
};
// A NaN/Inf or another value the computation cannot accept.
class numeric_error : public error {
 public:
  // Prefixes the message with "numeric_error: ".
  explicit numeric_error(const std::string& what) : error("numeric_error: " + what) {}
};
// A run stopped on request (SIGINT/SIGTERM) after saving what it needs to resume.
class interrupted_error : public error {
 public:
  // Prefixes the message with "interrupted: ".
  explicit interrupted_error(const std::string& what) : error("interrupted: " + what) {}
};
// A file is missing or cannot be read or written.
class io_error : public error {
 public:
  // Prefixes the message with "io_error: ".
  explicit io_error(const std::string& what) : error("io_error: " + what) {}
};

namespace detail {
template <class... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}
// "2, 5" from {2, 5} and ", ": layer lists in logs, tables and CSV cells.
template <class Range>
std::string join(const Range& xs, std::string_view sep) {
  std::string s;
  for (const auto& x : xs) {
    if (!s.empty()) s += sep;
    if constexpr (std::is_arithmetic_v<std::remove_cvref_t<decltype(x)>>)
      s += std::to_string(x);
    else
      s += x;
  }
  return s;
}
// Bytes from an untrusted file made safe for a one-line message: printable ASCII kept, the
// rest as \xNN, cut after `max` characters with "...".
inline std::string printable(std::string_view bytes, std::size_t max = 80) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string s;
  for (const char ch : bytes) {
    if (s.size() >= max) {
      s += "...";
      break;
    }
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c < 0x7f) {
      s += static_cast<char>(c);
    } else {
      s += "\\x";
      s += hex[c >> 4];
      s += hex[c & 15];
    }
  }
  return s;
}
}  // namespace detail

SPARSIMIX_ABI_END
}  // namespace sparsimix

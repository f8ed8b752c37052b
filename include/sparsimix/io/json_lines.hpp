// Append-only JSON-lines result logs (a resumable run's finished pieces, one JSON object a
// line): reading them back after a kill, appending one more.
#pragma once
#include <fstream>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "../core/error.hpp"
#include "atomic_file.hpp"

namespace sparsimix::io {
SPARSIMIX_ABI_BEGIN

// Calls `take` with each line of `path` (if it exists) parsed as JSON, in order, until a line
// fails to parse or `take` throws: a line cut by a kill, and everything after it, is dropped.
// The file is then rewritten to hold the whole lines only, so new lines never continue a cut one.
inline void read_json_lines(const std::string& path, const std::function<void(const nlohmann::json&)>& take) {
  std::ifstream in(path);
  if (!in) return;
  std::string line, kept;
  bool cut = false;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      take(nlohmann::json::parse(line));
      kept += line + "\n";
    } catch (const std::exception&) {
      cut = true;
      break;
    }
  }
  in.close();
  if (cut) write_text_atomically(path, kept);
}

// Appends one JSON object as a line of `path` and flushes it; throws io_error naming the file.
inline void append_json_line(const std::string& path, const nlohmann::json& j) {
  std::ofstream out(path, std::ios::app);
  out << j.dump() << "\n";
  out.flush();
  if (!out) throw io_error("cannot append a line to '" + path + "'");
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::io

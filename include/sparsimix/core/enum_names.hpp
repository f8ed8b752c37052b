// One table per enum gives both directions of its names: to_string(e) and parse_<enum>(s).
// Every enum the pipeline reads from a command line or a JSON file declares its table next
// to itself, so a name is spelled in exactly one place.
#pragma once
#include <array>
#include <string>
#include <string_view>
#include <utility>

#include "error.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN
namespace detail {

template <class E, std::size_t N>
using enum_table = std::array<std::pair<E, std::string_view>, N>;

template <class E, std::size_t N>
constexpr std::string_view enum_to_string(const enum_table<E, N>& table, E e) noexcept {
  for (const auto& [v, name] : table)
    if (v == e) return name;
  return "?";
}

// "a, b or c": the choices, for error messages and --help.
template <class E, std::size_t N>
std::string enum_choices(const enum_table<E, N>& table) {
  std::string s;
  for (std::size_t i = 0; i < N; ++i) {
    if (i) s += i + 1 == N ? " or " : ", ";
    s += table[i].second;
  }
  return s;
}

// Throws config_error naming `what`, the bad value and the choices.
template <class E, std::size_t N>
E enum_parse(const enum_table<E, N>& table, std::string_view s, std::string_view what) {
  for (const auto& [v, name] : table)
    if (name == s) return v;
  throw config_error(concat(what, " must be ", enum_choices(table), ", got '", s, "'"));
}

}  // namespace detail
SPARSIMIX_ABI_END
}  // namespace sparsimix

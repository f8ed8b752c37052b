// What makes a SeqMixer a first-class citizen of sparsimix (configs, checkpoints, HybridViT,
// distillation, the `sparsimix` command): a `mixer_traits<M>` block beside the class.
//
//     struct my_options {                       // the mixer's per-block options (JSON fields)
//       index_t width = 4;
//       template <class F> void fields(F&& f) { f("width", width); }
//       void validate(std::string_view where) const;   // throws config_error
//     };
//     template <class T> struct sparsimix::mixer_traits<MyMixer<T>> {
//       static constexpr std::string_view kind = "my_mixer";           // its name in configs
//       using options = my_options;
//       static MyMixer<T> make(const options&, const mixer_dims&, Rng&); // built and initialised
//       static options options_of(const MyMixer<T>&);                   // what a checkpoint records
//     };
//
// The built-in mixers (mixers/builtin.hpp) and a user's (models/registry.hpp's
// register_mixer) are described the same way. A block's mixer is stored in configs as a
// mixer_spec: the kind and its option values, in the options' field order.
#pragma once
#include <concepts>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "../concepts.hpp"
#include "../core/error.hpp"
#include "../core/rng.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// What the model gives every block's mixer: the width C and the number of heads H.
struct mixer_dims {
  index_t dim = 0;        // C, the token width
  index_t num_heads = 1;  // H, the model's attention heads (mixers with heads split C into H)
};

// An integer option that may be "auto" (stored as 0), e.g. selective_scan's dt_rank.
struct auto_index {
  index_t value = 0;  // the integer, or 0 for "auto"
  // True when the value is still "auto" (the mixer resolves it from the model's dims).
  bool is_auto() const noexcept { return value == 0; }
  // Same value, "auto" included.
  friend bool operator==(const auto_index&, const auto_index&) = default;
};

// The value types an option field may have (each maps to one JSON type).
using option_value = std::variant<index_t, double, bool, auto_index>;

// One option value of a mixer_spec, by its field name.
struct mixer_option {
  std::string name;    // the options struct's field name, as in config JSON
  option_value value;  // its value
  // Same name and the same value (of the same type).
  friend bool operator==(const mixer_option&, const mixer_option&) = default;
};

template <class M>
struct mixer_traits;  // specialised beside every registered mixer

// Per-block options: default-constructible, fields listed by fields(f), validate(where).
template <class O>
concept MixerOptions = std::default_initializable<O> && std::copy_constructible<O> && requires(O& o, const O& co) {
  o.fields([](std::string_view, auto&) {});
  co.validate(std::string_view{});
};

// A mixer with a traits block: a kind name, options, a factory and the inverse.
template <class M>
concept RegisteredMixer = SeqMixer<M> && requires(const M& m, Rng& rng) {
  { mixer_traits<M>::kind } -> std::convertible_to<std::string_view>;
  typename mixer_traits<M>::options;
  requires MixerOptions<typename mixer_traits<M>::options>;
  { mixer_traits<M>::make(typename mixer_traits<M>::options{}, mixer_dims{}, rng) } -> std::same_as<M>;
  { mixer_traits<M>::options_of(m) } -> std::same_as<typename mixer_traits<M>::options>;
};

// Options with no fields (attention, mh_lstm: everything comes from mixer_dims).
struct no_options {
  // Lists no fields.
  template <class F>
  void fields(F&&) {}
  // Accepts everything: there is nothing to check.
  void validate(std::string_view) const {}
};

// The traits of a mixer configured by the model's width and heads alone (attention, mh_lstm):
// derive from it and add `kind`.
template <class M>
struct dims_only_traits {
  using options = no_options;  // no per-block options
  // Builds the mixer for the model's width and heads and initialises it from `rng`.
  static M make(const options&, const mixer_dims& d, Rng& rng) {
    M m({d.dim, d.num_heads});
    m.init(rng);
    return m;
  }
  // Nothing to record beyond the kind.
  static options options_of(const M&) { return {}; }
};

namespace detail {
template <class V>
constexpr bool is_option_type = std::is_same_v<V, index_t> || std::is_same_v<V, double> || std::is_same_v<V, bool> ||
                                std::is_same_v<V, auto_index>;

inline std::string option_value_str(const option_value& v) {
  return std::visit(
      [](const auto& x) -> std::string {
        using V = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<V, auto_index>)
          return x.is_auto() ? std::string("auto") : std::to_string(x.value);
        else if constexpr (std::is_same_v<V, bool>)
          return x ? "true" : "false";
        else
          return concat(x);
      },
      v);
}
}  // namespace detail

// One block's mixer in a config: a kind name and option values. Equality compares both.
class mixer_spec {
 public:
  mixer_spec() = default;  // attention
  // A spec of `kind` with options as given (not validated; see get and normalize_spec).
  explicit mixer_spec(std::string kind, std::vector<mixer_option> options = {})
      : kind_(std::move(kind)), options_(std::move(options)) {}

  // The spec of `kind` with the values of typed options `o` (validated).
  template <MixerOptions O>
  static mixer_spec from(std::string kind, O o) {
    o.validate(kind);
    std::vector<mixer_option> out;
    o.fields([&](std::string_view name, auto& field) {
      static_assert(detail::is_option_type<std::decay_t<decltype(field)>>,
                    "mixer option fields must be index_t, double, bool or auto_index");
      out.push_back({std::string(name), option_value(field)});
    });
    return mixer_spec(std::move(kind), std::move(out));
  }

  // The registered kind's name, like "selective_scan".
  const std::string& kind() const noexcept { return kind_; }
  // The option values, in the options' field order once normalised.
  const std::vector<mixer_option>& options() const noexcept { return options_; }

  // The typed options: defaults, overwritten by every value given here, then validated.
  // A value whose name O does not have, or whose type does not fit, is a config_error
  // naming `where`, the field and what was expected. An integer is accepted for a double
  // field and for an auto_index field.
  template <MixerOptions O>
  O get(std::string_view where) const {
    O o{};
    std::vector<bool> used(options_.size(), false);
    o.fields([&](std::string_view name, auto& field) {
      using V = std::decay_t<decltype(field)>;
      for (std::size_t i = 0; i < options_.size(); ++i) {
        if (options_[i].name != name) continue;
        used[i] = true;
        const option_value& v = options_[i].value;
        if (const V* exact = std::get_if<V>(&v)) {
          field = *exact;
          continue;
        }
        const index_t* n = std::get_if<index_t>(&v);
        if constexpr (std::is_same_v<V, double>) {
          if (n) {
            field = static_cast<double>(*n);
            continue;
          }
        }
        if constexpr (std::is_same_v<V, auto_index>) {
          if (n) {
            if (*n <= 0)
              throw config_error(detail::concat(where, ": '", name, "' must be positive or \"auto\", got ", *n));
            field = auto_index{*n};
            continue;
          }
        }
        throw config_error(detail::concat(where, ": '", name, "' must be ",
                                          std::is_same_v<V, bool>         ? "true or false"
                                          : std::is_same_v<V, double>     ? "a number"
                                          : std::is_same_v<V, auto_index> ? "a positive integer or \"auto\""
                                                                          : "an integer",
                                          ", got ", detail::option_value_str(v)));
      }
    });
    for (std::size_t i = 0; i < options_.size(); ++i)
      if (!used[i]) throw config_error(detail::concat(where, ": unknown field '", options_[i].name, "' for kind '", kind_, "'"));
    o.validate(where);
    return o;
  }

  // Same kind and the same options in the same order.
  friend bool operator==(const mixer_spec&, const mixer_spec&) = default;

 private:
  std::string kind_ = "attention";
  std::vector<mixer_option> options_;
};

// The spec mixer m would be saved with.
template <RegisteredMixer M>
mixer_spec spec_of(const M& m) {
  return mixer_spec::from(std::string(mixer_traits<M>::kind), mixer_traits<M>::options_of(m));
}

// A spec for the registered mixer template M (e.g. spec_for<SelectiveScan>({.bidirectional = true})).
template <template <class> class M>
mixer_spec spec_for(typename mixer_traits<M<float>>::options o = {}) {
  return mixer_spec::from(std::string(mixer_traits<M<float>>::kind), std::move(o));
}

// A list of mixer class templates (the built-ins; mixers/builtin.hpp).
template <template <class> class... Ms>
struct mixer_list {};

SPARSIMIX_ABI_END
}  // namespace sparsimix

// The mixer registry: every kind name a config may hold, mapped to how its options are
// read and how its mixer is built. The built-in mixers (mixers/builtin.hpp) are there from
// the start; a user's mixer joins with one line and then works wherever a built-in does
// (config JSON by its kind name, checkpoints, HybridViT, distillation, the sparsimix command):
//
//   SPARSIMIX_REGISTER_MIXER(MyMixer);   // MyMixer<T> has a mixer_traits block (mixers/traits.hpp)
//
// A block holds a built-in mixer directly (one alternative of the Mixer<T> variant, no
// virtual calls) and any other registered mixer through AnyMixer.
#pragma once
#include <algorithm>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <typeindex>
#include <typeinfo>
#include <variant>
#include <vector>

#include "../mixers/builtin.hpp"
#include "any_mixer.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

namespace detail {
template <class List, class T>
struct mixer_variant;
template <template <class> class... Ms, class T>
struct mixer_variant<mixer_list<Ms...>, T> {
  using type = std::variant<Ms<T>..., AnyMixer<T>>;
};
template <class M, class V>
inline constexpr bool is_alternative = false;
template <class M, class... Ts>
inline constexpr bool is_alternative<M, std::variant<Ts...>> = (std::is_same_v<M, Ts> || ...);
}  // namespace detail

// The token mixer of one block: a built-in one, or any other SeqMixer behind AnyMixer.
template <class T = float>
using Mixer = typename detail::mixer_variant<builtin_mixers, T>::type;

// Every mixer kind a config may name: how its options are read and how its mixer is built.
class mixer_registry {
 public:
  // Builds a block's mixer of scalar T from its normalised spec and the model's dims.
  template <class T>
  using factory = Mixer<T> (*)(const mixer_spec&, const mixer_dims&, Rng&);

  // One registered kind.
  struct entry {
    std::string kind;                     // its name in configs ("mh_lstm")
    bool builtin = false;                 // one of builtin_mixers (held in Mixer directly, not via AnyMixer)
    std::type_index type = typeid(void);  // the registered C++ type (float instance)
    // The spec with every option present (defaults filled in) and validated; config_error
    // names `where` and the field otherwise.
    mixer_spec (*normalize)(const mixer_spec&, std::string_view where) = nullptr;
    factory<float> make_float = nullptr;    // builds the float mixer (nullptr: not registered for float)
    factory<double> make_double = nullptr;  // builds the double mixer (nullptr: not registered for double)

    // Builds the kind's mixer for T from a normalised spec; config_error when T is not registered.
    template <class T>
    Mixer<T> make(const mixer_spec& spec, const mixer_dims& dims, Rng& rng) const {
      const factory<T> f = [&] {
        if constexpr (std::is_same_v<T, float>) return make_float;
        else return make_double;
      }();
      if (!f)
        throw config_error(detail::concat("mixer kind '", kind, "' is registered without a ",
                                          std::is_same_v<T, float> ? "float" : "double", " version"));
      return f(spec, dims, rng);
    }
  };

  // The process-wide registry; the built-in mixers are registered on first use.
  static mixer_registry& instance() {
    static mixer_registry r = [] {
      mixer_registry b;
      b.add_list(builtin_mixers{});
      return b;
    }();
    return r;
  }

  // The entry of `kind`, or nullptr when no such kind is registered.
  const entry* find(std::string_view kind) const {
    for (const auto& e : entries_)
      if (e.kind == kind) return &e;
    return nullptr;
  }
  // Throws config_error naming `where`, the kind and the registered kinds.
  const entry& at(std::string_view kind, std::string_view where) const {
    if (const entry* e = find(kind)) return *e;
    throw config_error(detail::concat(where, ": unknown kind '", kind, "' (expected ", choices(), ")"));
  }
  // Every registered kind, in registration order (built-ins first).
  std::vector<std::string> kinds() const {
    std::vector<std::string> k;
    for (const auto& e : entries_) k.push_back(e.kind);
    return k;
  }
  // "attention, mh_lstm or selective_scan".
  std::string choices() const {
    std::string s;
    for (std::size_t i = 0; i < entries_.size(); ++i) {
      if (i) s += i + 1 == entries_.size() ? " or " : ", ";
      s += entries_[i].kind;
    }
    return s;
  }

  // Registers the mixer template M (M<float>, and M<double> when it is a RegisteredMixer
  // too). Registering the same type again is a no-op; another type under a taken kind is a
  // config_error.
  template <template <class> class M>
  bool add(bool builtin = false) {
    static_assert(RegisteredMixer<M<float>>,
                  "register_mixer<M>: M<float> needs to model SeqMixer and have a mixer_traits block "
                  "(kind, options, make, options_of; see mixers/traits.hpp)");
    entry e = entry_for<M<float>>(builtin);
    if constexpr (RegisteredMixer<M<double>>) e.make_double = &make_one<M<double>, double>;
    return insert(std::move(e));
  }
  // Registers one concrete mixer type (for its own scalar type only).
  template <class M>
  bool add() {
    static_assert(RegisteredMixer<M>, "register_mixer<M>: M needs to model SeqMixer and have a mixer_traits block");
    return insert(entry_for<M>(false));
  }

 private:
  template <template <class> class... Ms>
  void add_list(mixer_list<Ms...>) {
    (add<Ms>(true), ...);
  }

  template <class M>
  static entry entry_for(bool builtin) {
    using tr = mixer_traits<M>;
    entry e;
    e.kind = std::string(tr::kind);
    e.builtin = builtin;
    e.type = typeid(M);
    e.normalize = [](const mixer_spec& s, std::string_view where) {
      return mixer_spec::from(std::string(tr::kind), s.get<typename tr::options>(where));
    };
    if constexpr (std::is_same_v<typename M::scalar_type, float>) e.make_float = &make_one<M, float>;
    if constexpr (std::is_same_v<typename M::scalar_type, double>) e.make_double = &make_one<M, double>;
    return e;
  }

  template <class M, class T>
  static Mixer<T> make_one(const mixer_spec& spec, const mixer_dims& dims, Rng& rng) {
    using tr = mixer_traits<M>;
    const std::string where = detail::concat("mixer '", tr::kind, "'");
    M m = tr::make(spec.get<typename tr::options>(where), dims, rng);
    if constexpr (detail::is_alternative<M, Mixer<T>>)
      return Mixer<T>(std::in_place_type<M>, std::move(m));
    else
      return Mixer<T>(std::in_place_type<AnyMixer<T>>, AnyMixer<T>(std::move(m)));
  }

  bool insert(entry e) {
    if (const entry* old = find(e.kind)) {
      if (old->type == e.type) return true;
      throw config_error(detail::concat("register_mixer: kind '", e.kind, "' is already registered for another type"));
    }
    entries_.push_back(std::move(e));
    return true;
  }

  std::vector<entry> entries_;
};

// Makes a user mixer template (or one concrete type) a registered kind. Returns true, so it
// can initialise a static (SPARSIMIX_REGISTER_MIXER does).
template <template <class> class M>
bool register_mixer() {
  return mixer_registry::instance().add<M>();
}
template <class M>
bool register_mixer() {
  return mixer_registry::instance().add<M>();
}

// The spec with defaults filled in and validated against its kind's options.
inline mixer_spec normalize_spec(const mixer_spec& spec, std::string_view where) {
  return mixer_registry::instance().at(spec.kind(), where).normalize(spec, where);
}

// "d_state=8,bidirectional=true,dt_rank=auto" -> option values (true/false, integers,
// numbers, auto), for command lines. Names and types are checked by normalize_spec.
inline std::vector<mixer_option> parse_mixer_options(std::string_view text, std::string_view where) {
  std::vector<mixer_option> out;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const std::size_t end = std::min(text.find(',', pos), text.size());
    const std::string_view item = text.substr(pos, end - pos);
    pos = end + 1;
    if (item.empty()) continue;
    const std::size_t eq = item.find('=');
    if (eq == std::string_view::npos || eq == 0 || eq + 1 == item.size())
      throw config_error(detail::concat(where, ": '", item, "' is not option=value"));
    const std::string name(item.substr(0, eq)), v(item.substr(eq + 1));
    option_value value;
    if (v == "true" || v == "false") {
      value = v == "true";
    } else if (v == "auto") {
      value = auto_index{};
    } else {
      std::size_t used = 0;
      try {
        if (v.find_first_of(".eE") == std::string::npos) {
          value = static_cast<index_t>(std::stoll(v, &used));
        } else {
          value = std::stod(v, &used);
        }
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != v.size())
        throw config_error(detail::concat(where, ": option ", name, " = '", v, "' is not true, false, auto or a number"));
    }
    out.push_back({name, value});
  }
  return out;
}

// A mixer of the kind `spec` describes, for width and heads `dims`, initialised from rng.
template <class T>
Mixer<T> make_mixer(const mixer_spec& spec, const mixer_dims& dims, Rng& rng) {
  return mixer_registry::instance().at(spec.kind(), "make_mixer").template make<T>(spec, dims, rng);
}

// The spec block mixer m would be saved with; empty for an AnyMixer holding an unregistered type.
template <class... Ms>
std::optional<mixer_spec> spec_of(const std::variant<Ms...>& m) {
  return std::visit(
      [](const auto& mm) -> std::optional<mixer_spec> {
        if constexpr (requires { { mm.spec() } -> std::same_as<std::optional<mixer_spec>>; })
          return mm.spec();
        else
          return sparsimix::spec_of(mm);
      },
      m);
}

SPARSIMIX_ABI_END
}  // namespace sparsimix

// Registers MyMixer (a class template on the scalar, with a mixer_traits block) at start-up.
// Use it once, at namespace scope, in a .cpp file or a header.
#define SPARSIMIX_REGISTER_MIXER(M)                                                    \
  [[maybe_unused]] static const bool sparsimix_registered_##M##_ = ::sparsimix::register_mixer<M>()

// vit_config <-> the JSON string stored as "sparsimix.config" (docs/formats.md section 1).
// Required: every field of the example except ln_eps (default 1e-6) and halting (null).
// Unknown kinds or fields are errors, so a typo never silently becomes a default.
#pragma once
#include <cmath>
#include <set>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "../models/registry.hpp"
#include "../models/vit_config.hpp"

namespace sparsimix::io {
SPARSIMIX_ABI_BEGIN

namespace detail {
using sparsimix::detail::concat;

inline void refuse_unknown(const nlohmann::json& obj, const std::set<std::string>& known, const std::string& where) {
  for (auto it = obj.begin(); it != obj.end(); ++it)
    if (!known.count(it.key())) throw config_error(concat(where, ": unknown field '", it.key(), "'"));
}
inline index_t get_int(const nlohmann::json& obj, const char* key, const std::string& where) {
  const auto it = obj.find(key);
  if (it == obj.end()) throw config_error(concat(where, ": missing field '", key, "'"));
  if (!it->is_number_integer()) throw config_error(concat(where, ": '", key, "' must be an integer, got ", it->dump()));
  return it->get<index_t>();
}
inline double get_num(const nlohmann::json& obj, const char* key, const std::string& where) {
  const auto it = obj.find(key);
  if (it == obj.end()) throw config_error(concat(where, ": missing field '", key, "'"));
  if (!it->is_number()) throw config_error(concat(where, ": '", key, "' must be a number, got ", it->dump()));
  return it->get<double>();
}
}  // namespace detail

// {"kind": K, "option": value, ...} -> the registered kind's spec, defaults filled in and
// validated. JSON integers, numbers, booleans and the string "auto" map to the option types.
inline mixer_spec mixer_spec_from_json(const nlohmann::json& m, const std::string& where) {
  using detail::concat;
  if (!m.is_object() || !m.contains("kind") || !m["kind"].is_string())
    throw config_error(where + ": must be an object with a string 'kind'");
  const std::string kind = m["kind"].get<std::string>();
  std::vector<mixer_option> options;
  for (auto it = m.begin(); it != m.end(); ++it) {
    if (it.key() == "kind") continue;
    const auto& v = it.value();
    option_value value;
    if (v.is_boolean()) value = v.get<bool>();
    else if (v.is_number_integer()) value = v.get<index_t>();
    else if (v.is_number()) value = v.get<double>();
    else if (v.is_string() && v.get<std::string>() == "auto") value = auto_index{};
    else throw config_error(concat(where, ": '", it.key(), "' has an unsupported value ", v.dump()));
    options.push_back({it.key(), value});
  }
  return normalize_spec(mixer_spec(kind, std::move(options)), where);
}

// The spec as {"kind": K, option: value, ...}, options in field order, "auto" for auto values.
inline nlohmann::ordered_json to_json(const mixer_spec& s) {
  nlohmann::ordered_json o;
  o["kind"] = s.kind();
  for (const auto& opt : s.options())
    std::visit(
        [&](const auto& v) {
          using V = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<V, auto_index>) {
            if (v.is_auto()) o[opt.name] = "auto";
            else o[opt.name] = v.value;
          } else {
            o[opt.name] = v;
          }
        },
        opt.value);
  return o;
}

// Parses and validates a "sparsimix.config" object; throws config_error naming the bad field.
inline vit_config vit_config_from_json(const nlohmann::json& j) {
  using detail::concat;
  const std::string where = "sparsimix.config";
  if (!j.is_object()) throw config_error(where + ": not a JSON object");
  detail::refuse_unknown(j, {"img_size", "patch_size", "in_chans", "num_classes", "embed_dim", "depth", "num_heads",
                             "mlp_ratio", "ln_eps", "mixers", "halting"},
                         where);
  vit_config c;
  c.img_size = detail::get_int(j, "img_size", where);
  c.patch_size = detail::get_int(j, "patch_size", where);
  c.in_chans = detail::get_int(j, "in_chans", where);
  c.num_classes = detail::get_int(j, "num_classes", where);
  c.embed_dim = detail::get_int(j, "embed_dim", where);
  c.depth = detail::get_int(j, "depth", where);
  c.num_heads = detail::get_int(j, "num_heads", where);
  c.mlp_ratio = detail::get_num(j, "mlp_ratio", where);
  if (j.contains("ln_eps")) c.ln_eps = detail::get_num(j, "ln_eps", where);
  const auto mx = j.find("mixers");
  if (mx == j.end() || !mx->is_array()) throw config_error(where + ": missing array 'mixers'");
  for (std::size_t i = 0; i < mx->size(); ++i) c.mixers.push_back(mixer_spec_from_json((*mx)[i], concat(where, ": mixers[", i, "]")));
  if (j.contains("halting") && !j["halting"].is_null()) {
    const auto& h = j["halting"];
    if (!h.is_object()) throw config_error(where + ": halting must be an object or null");
    detail::refuse_unknown(h, {"gamma", "beta", "eps"}, where + ": halting");
    halting_spec hs;
    if (h.contains("gamma")) hs.gamma = detail::get_num(h, "gamma", where + ": halting");
    if (h.contains("beta")) hs.beta = detail::get_num(h, "beta", where + ": halting");
    if (h.contains("eps")) hs.eps = detail::get_num(h, "eps", where + ": halting");
    c.halting = hs;
  }
  c.validate();
  return c;
}

// Parses "sparsimix.config" JSON text; throws config_error on bad JSON or a bad field.
inline vit_config vit_config_from_string(const std::string& s) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(s);
  } catch (const nlohmann::json::exception& e) {
    throw config_error(std::string("sparsimix.config: not valid JSON: ") + sparsimix::detail::printable(e.what(), 160));
  }
  return vit_config_from_json(j);
}

// The config as the "sparsimix.config" object (halting null when off).
inline nlohmann::ordered_json to_json(const vit_config& c) {
  nlohmann::ordered_json j;
  j["img_size"] = c.img_size;
  j["patch_size"] = c.patch_size;
  j["in_chans"] = c.in_chans;
  j["num_classes"] = c.num_classes;
  j["embed_dim"] = c.embed_dim;
  j["depth"] = c.depth;
  j["num_heads"] = c.num_heads;
  j["mlp_ratio"] = c.mlp_ratio;
  j["ln_eps"] = c.ln_eps;
  j["mixers"] = nlohmann::ordered_json::array();
  for (const auto& m : c.mixers) j["mixers"].push_back(to_json(m));
  if (c.halting)
    j["halting"] = {{"gamma", c.halting->gamma}, {"beta", c.halting->beta}, {"eps", c.halting->eps}};
  else
    j["halting"] = nullptr;
  return j;
}

// The config as compact JSON text, the checkpoint's "sparsimix.config" metadata.
inline std::string to_string(const vit_config& c) { return to_json(c).dump(); }

SPARSIMIX_ABI_END
}  // namespace sparsimix::io

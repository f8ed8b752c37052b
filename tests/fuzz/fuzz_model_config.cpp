// Fuzz target: the sparsimix.config JSON reader (with validation and the mixer registry's
// option parsing) on arbitrary text: a valid config or a sparsimix::error, nothing else.
#include <cstddef>
#include <cstdint>
#include <string>

#include <sparsimix/io/model_config.hpp>
#include <sparsimix/mixers/builtin.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto c = sparsimix::io::vit_config_from_string(std::string(reinterpret_cast<const char*>(data), size));
    (void)sparsimix::io::to_string(c);  // what was accepted prints back
  } catch (const sparsimix::error&) {
  }
  return 0;
}

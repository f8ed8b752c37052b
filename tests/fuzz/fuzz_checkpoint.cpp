// Fuzz target: a whole checkpoint load (safetensors, the config in its metadata or a timm
// layout inferred from the shapes, the strict name/shape match, the LSTM's block-diagonal
// check) on arbitrary bytes: a model or a sparsimix::error, and memory bounded by the input.
#include <cstddef>
#include <cstdint>
#include <vector>

#include <sparsimix/io/checkpoint.hpp>
#include <sparsimix/mixers/builtin.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto f = sparsimix::io::safetensors_file::parse(std::vector<char>(data, data + size), "fuzz.safetensors");
    auto model = sparsimix::io::load_checkpoint<float>(f);
    (void)model.num_parameters();
  } catch (const sparsimix::error&) {
  }
  return 0;
}

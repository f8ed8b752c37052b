// Fuzz target: the safetensors reader on arbitrary bytes. Every input either parses (and then
// every tensor converts to float) or throws a sparsimix::error; anything else is a finding.
#include <cstddef>
#include <cstdint>
#include <vector>

#include <sparsimix/io/safetensors.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto f = sparsimix::io::safetensors_file::parse(std::vector<char>(data, data + size), "fuzz.safetensors");
    for (const auto& r : f.records()) (void)f.get<float>(r.name);
  } catch (const sparsimix::error&) {
  }
  return 0;
}

// Fuzz target: the IDX reader (gzip or plain) on arbitrary bytes, through a file as the
// commands read it: a tensor or a sparsimix::error.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <unistd.h>

#include <sparsimix/data/idx.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = "/tmp/sparsimix_fuzz_idx." + std::to_string(::getpid());
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  try {
    (void)sparsimix::data::read_idx(path);
  } catch (const sparsimix::error&) {
  }
  std::remove(path.c_str());
  return 0;
}

// Fuzz target: the JPEG/PNG decoder and the evaluation transform on arbitrary bytes, through
// a file as the commands read it: a preprocessed image or a sparsimix::error.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <unistd.h>
#include <vector>

#include <sparsimix/data/preprocess.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = "/tmp/sparsimix_fuzz_image." + std::to_string(::getpid());
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  try {
    sparsimix::data::preprocess_options o;
    o.img_size = 16;
    o.channels = 3;
    std::vector<float> out(3 * 16 * 16);
    const auto img = sparsimix::data::convert_channels(sparsimix::data::decode_image_file(path), 3);
    sparsimix::data::preprocess_eval(img, o, out.data());
  } catch (const sparsimix::error&) {
  }
  std::remove(path.c_str());
  return 0;
}

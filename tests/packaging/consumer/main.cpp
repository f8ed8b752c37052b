// A user's program against the installed sparsimix: a Linear layer through the GEMM helper,
// checked against a plain loop, a safetensors round trip, and the headers' version against
// the one the build system found (EXPECTED_VERSION: CMake's package version or pkg-config's).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include <sparsimix/sparsimix.hpp>

int main() {
  using namespace sparsimix;
#ifdef EXPECTED_VERSION
  if (std::strcmp(version_string, EXPECTED_VERSION) != 0) {
    std::printf("version mismatch: headers %s, package %s\n", version_string, EXPECTED_VERSION);
    return 1;
  }
#endif
  Rng rng(1);
  Tensor<float> x(Shape{5, 7}), w(Shape{3, 7}), b(Shape{3}), y(Shape{5, 3});
  fill_normal(rng, x.data(), x.numel(), 0, 1);
  fill_normal(rng, w.data(), w.numel(), 0, 1);
  fill_normal(rng, b.data(), b.numel(), 0, 1);
  linear_forward(x.data(), w.data(), b.data(), y.data(), 5, 7, 3);
  for (index_t i = 0; i < 5; ++i)
    for (index_t j = 0; j < 3; ++j) {
      double s = b(j);
      for (index_t k = 0; k < 7; ++k) s += double(x(i, k)) * w(j, k);
      if (std::abs(s - y(i, j)) > 1e-4) { std::printf("linear mismatch\n"); return 1; }
    }
  const auto path = (std::filesystem::temp_directory_path() / "sparsimix_consumer.safetensors").string();
  io::safetensors_writer wr;
  wr.add("y", y);
  wr.write(path);
  const auto back = io::safetensors_file::load(path).get<float>("y", {5, 3});
  std::filesystem::remove(path);
  for (index_t i = 0; i < y.numel(); ++i)
    if (back.data()[i] != y.data()[i]) { std::printf("round trip mismatch\n"); return 1; }
  std::printf("consumer ok (sparsimix %s): y[0] = %.5f %.5f %.5f\n", version_string, double(y(0, 0)), double(y(0, 1)), double(y(0, 2)));
  return 0;
}

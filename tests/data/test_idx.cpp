#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <sparsimix/data/idx.hpp>

using namespace sparsimix;

namespace {
std::string write_tmp(const std::string& name, const std::string& bytes) {
  const auto p = (std::filesystem::temp_directory_path() / name).string();
  std::ofstream(p, std::ios::binary) << bytes;
  return p;
}
}  // namespace

TEST_CASE("read_idx reads a plain IDX file and refuses bad ones", "[io][idx]") {
  const std::string good("\x00\x00\x08\x02\x00\x00\x00\x02\x00\x00\x00\x03\x01\x02\x03\x04\x05\x06", 18);
  const auto p = write_tmp("sparsimix_ok.idx", good);
  const auto t = data::read_idx(p);
  REQUIRE(t.shape() == Shape{2, 3});
  REQUIRE(t(1, 2) == 6);
  const auto trunc = write_tmp("sparsimix_trunc.idx", good.substr(0, 15));
  REQUIRE_THROWS_WITH(data::read_idx(trunc), Catch::Contains("truncated"));
  const auto magic = write_tmp("sparsimix_magic.idx", std::string("\x00\x00\x0d\x01\x00\x00\x00\x01\x00", 9));
  REQUIRE_THROWS_WITH(data::read_idx(magic), Catch::Contains("expected 0 0 8"));
  REQUIRE_THROWS_AS(data::read_idx("/nonexistent.idx"), io_error);
  for (const auto& f : {p, trunc, magic}) std::filesystem::remove(f);
}

TEST_CASE("Fashion-MNIST loads from Debian's package, normalised", "[io][idx][data]") {
  const auto ds = data::load_fashion_mnist(data::fashion_mnist_default_dir, "test", 1000);
  REQUIRE(ds.images.shape() == Shape{1000, 1, 28, 28});
  REQUIRE(ds.size() == 1000);
  int counts[10] = {};
  for (auto y : ds.labels) ++counts[y];
  for (int c : counts) REQUIRE(c > 50);  // every class present in the first 1000
  double mean = 0;
  for (float v : ds.images) mean += v;
  mean /= double(ds.images.numel());
  REQUIRE(std::abs(mean) < 0.1);  // normalised by the training-set statistics
  const auto full = data::load_fashion_mnist(data::fashion_mnist_default_dir, "train");
  REQUIRE(full.size() == 60000);
}

TEST_CASE("Fashion-MNIST names the missing file and the package", "[io][idx]") {
  REQUIRE_THROWS_WITH(data::load_fashion_mnist("/nonexistent", "train"),
                      Catch::Contains("train-images-idx3-ubyte.gz") && Catch::Contains("dataset-fashion-mnist"));
}

TEST_CASE("read_idx bounds extents whose product overflows and allocates only what the file holds", "[io][idx]") {
  // Found by fuzzing: three extents of about 2^24 multiply past 2^64 (undefined behaviour).
  const auto huge = write_tmp("sparsimix_huge.idx", std::string("\x00\x00\x08\x03\x00\x01\x02\x03\x04\x05\x06\x07"
                                                                "\x08\x09\x0a\x0b\x0c\x0d", 18));
  REQUIRE_THROWS_WITH(data::read_idx(huge), Catch::Contains("is too large"));
  // 2^32 values claimed, 3 present: refused as truncated without a 4 GB allocation.
  const auto claims = write_tmp("sparsimix_claims.idx", std::string("\x00\x00\x08\x02\x00\x01\x00\x00\x00\x01\x00\x00"
                                                                    "\x01\x02\x03", 15));
  REQUIRE_THROWS_WITH(data::read_idx(claims), Catch::Contains("file ends inside the data"));
  for (const auto& f : {huge, claims}) std::filesystem::remove(f);
}

// IDX files (the MNIST / Fashion-MNIST format), read straight from .gz or plain files.
// Format: magic 0x0000 0x08 and a rank byte, rank big-endian u32 extents, then unsigned bytes.
#pragma once
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <zlib.h>

#include "../core/tensor.hpp"
#include "dataset.hpp"
#include "../io/file_checks.hpp"

namespace sparsimix::data {
SPARSIMIX_ABI_BEGIN

// The raw bytes of an IDX file of rank 1..3 (uint8 data only), e.g. [60000, 28, 28].
inline Tensor<std::uint8_t> read_idx(const std::string& path) {
  using sparsimix::detail::concat;
  io::require_input_file(path, "IDX file");
  gzFile f = gzopen(path.c_str(), "rb");  // reads plain files too
  if (!f) throw io_error(concat("cannot open '", path, "'"));
  struct closer { gzFile f; ~closer() { gzclose(f); } } guard{f};
  auto read_exact = [&](void* dst, unsigned n, const char* what) {
    const int got = gzread(f, dst, n);
    if (got < 0 || static_cast<unsigned>(got) != n)
      throw format_error(concat(path, ": file ends inside the ", what, " (corrupt or truncated)"));
  };
  unsigned char magic[4];
  read_exact(magic, 4, "magic number");
  if (magic[0] != 0 || magic[1] != 0 || magic[2] != 0x08)
    throw format_error(concat(path, ": not an unsigned-byte IDX file (magic ", int(magic[0]), " ", int(magic[1]), " ",
                              int(magic[2]), ", expected 0 0 8)"));
  const int ndim = magic[3];
  if (ndim < 1 || ndim > 3) throw format_error(concat(path, ": IDX rank ", ndim, ", expected 1 to 3"));
  index_t dims[3] = {1, 1, 1};
  for (int d = 0; d < ndim; ++d) {
    unsigned char b[4];
    read_exact(b, 4, "dimensions");
    dims[d] = (index_t(b[0]) << 24) | (index_t(b[1]) << 16) | (index_t(b[2]) << 8) | index_t(b[3]);
  }
  const Shape shape = ndim == 1 ? Shape{dims[0]} : ndim == 2 ? Shape{dims[0], dims[1]} : Shape{dims[0], dims[1], dims[2]};
  // Three 32-bit extents can overflow 64 bits (found by fuzzing): bound the product as it grows.
  constexpr index_t max_values = index_t(1) << 32;
  index_t n = 1;
  for (int d = 0; d < ndim; ++d) {
    if (dims[d] != 0 && n > max_values / dims[d])
      throw format_error(concat(path, ": IDX shape ", shape.str(), " is too large"));
    n *= dims[d];
  }
  // Read before allocating the tensor: memory grows with the bytes the file really holds,
  // not with the extents its header claims.
  std::vector<std::uint8_t> bytes;
  bytes.reserve(static_cast<std::size_t>(std::min<index_t>(n, index_t(1) << 20)));
  unsigned char chunk[1 << 16];
  while (static_cast<index_t>(bytes.size()) < n) {
    const auto want = static_cast<unsigned>(std::min<index_t>(n - static_cast<index_t>(bytes.size()), sizeof chunk));
    const int got = gzread(f, chunk, want);
    if (got <= 0) throw format_error(concat(path, ": file ends inside the data (corrupt or truncated)"));
    bytes.insert(bytes.end(), chunk, chunk + got);
  }
  Tensor<std::uint8_t> out(shape);
  std::copy(bytes.begin(), bytes.end(), out.data());
  return out;
}

// Where Debian's dataset-fashion-mnist package installs the .gz files (the --data default).
inline constexpr const char* fashion_mnist_default_dir = "/usr/share/datasets/fashion-mnist";

// Loads split "train" (60k) or "test" (10k) from `dir` (the layout of Debian's
// dataset-fashion-mnist: train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, and the
// same with t10k for the test split). `limit` > 0 keeps only the first `limit` examples.
inline image_dataset load_fashion_mnist(const std::string& dir, const std::string& split, index_t limit = 0) {
  using sparsimix::detail::concat;
  if (split != "train" && split != "test") throw config_error(concat("fashion-mnist: unknown split '", split, "'"));
  std::error_code ec;
  if (std::filesystem::exists(dir, ec) && !std::filesystem::is_directory(dir, ec))
    throw io_error(concat("fashion-mnist: '", dir, "' is not a folder (--data names the folder of the .gz files)"));
  const std::string stem = split == "train" ? "train" : "t10k";
  auto find = [&](const std::string& base) {
    for (const std::string& cand : {base + ".gz", base}) {
      const std::string p = (std::filesystem::path(dir) / cand).string();
      if (std::filesystem::exists(p)) return p;
    }
    throw io_error(concat("fashion-mnist: missing '", (std::filesystem::path(dir) / (base + ".gz")).string(),
                          "' (install Debian's dataset-fashion-mnist package, or pass --data DIR)"));
  };
  const auto raw_images = read_idx(find(stem + "-images-idx3-ubyte"));
  const auto raw_labels = read_idx(find(stem + "-labels-idx1-ubyte"));
  if (raw_images.rank() != 3 || raw_labels.rank() != 1 || raw_images.size(0) != raw_labels.size(0))
    throw format_error(concat("fashion-mnist: images ", raw_images.shape().str(), " and labels ", raw_labels.shape().str(),
                              " do not match"));
  index_t n = raw_labels.size(0);
  if (limit > 0 && limit < n) n = limit;
  const index_t h = raw_images.size(1), w = raw_images.size(2);
  image_dataset ds(Tensor<float>(Shape{n, 1, h, w}), Tensor<std::int64_t>(Shape{n}));
  const float scale = 1.0f / (255.0f * fashion_mnist_std), shift = fashion_mnist_mean / fashion_mnist_std;
  for (index_t i = 0; i < n * h * w; ++i) ds.images.data()[i] = float(raw_images.data()[i]) * scale - shift;
  for (index_t i = 0; i < n; ++i) {
    const auto y = raw_labels.data()[i];
    if (y > 9) throw format_error(concat("fashion-mnist: label ", int(y), " at index ", i, " is not in 0..9"));
    ds.labels.data()[i] = y;
  }
  return ds;
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::data

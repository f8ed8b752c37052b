// CIFAR-10 and CIFAR-100 in their binary format (www.cs.toronto.edu/~kriz/cifar.html):
//   CIFAR-10:  data_batch_1.bin .. data_batch_5.bin, test_batch.bin; records of 1 label byte
//              and 3072 pixel bytes (1024 R, 1024 G, 1024 B, rows of 32);
//   CIFAR-100: train.bin, test.bin; records of a coarse and a fine label byte, then 3072
//              pixel bytes (the fine label, 100 classes, is the one used).
// The 8-bit pixels stay in memory (150 MB for CIFAR-10's training set, a quarter of the float
// tensor) and go through the same preprocessing as image folders when a batch needs them.
#pragma once
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "../io/file_checks.hpp"
#include "dataset.hpp"
#include "preprocess.hpp"

namespace sparsimix::data {
SPARSIMIX_ABI_BEGIN

// Which CIFAR: the label bytes per record and the class count.
enum class cifar_kind { cifar10, cifar100 };

// The files of `split` ("train" or "test") of `kind` in `dir`.
inline std::vector<std::string> cifar_files(const std::string& dir, cifar_kind kind, const std::string& split) {
  namespace fs = std::filesystem;
  std::vector<std::string> names;
  if (kind == cifar_kind::cifar10) {
    if (split == "train")
      for (int i = 1; i <= 5; ++i) names.push_back("data_batch_" + std::to_string(i) + ".bin");
    else
      names.push_back("test_batch.bin");
  } else {
    names.push_back(split == "train" ? "train.bin" : "test.bin");
  }
  for (auto& n : names) n = (fs::path(dir) / n).string();
  return names;
}

// Pixels of every record, decoded to [32, 32, 3] on demand.
class cifar_source final : public image_source {
 public:
  // Records in `pixels` (3072 bytes each, planar RGB); `where` names each record's file.
  cifar_source(std::vector<std::uint8_t> pixels, std::vector<std::pair<std::string, index_t>> files, preprocess_options pre)
      : pixels_(std::move(pixels)), files_(std::move(files)), pre_(std::move(pre)) {
    pre_.check();
  }
  index_t size() const override { return static_cast<index_t>(pixels_.size() / record_pixels); }
  Shape image_shape() const override { return Shape{pre_.channels, pre_.img_size, pre_.img_size}; }
  void load(index_t i, float* dst, Rng* augment) const override {
    decoded_image img;
    img.height = img.width = 32;
    img.channels = 3;
    img.pixels.resize(record_pixels);
    const std::uint8_t* src = pixels_.data() + i * record_pixels;
    for (index_t p = 0; p < 1024; ++p)
      for (index_t c = 0; c < 3; ++c) img.pixels[static_cast<std::size_t>(p * 3 + c)] = src[c * 1024 + p];
    img = convert_channels(std::move(img), pre_.channels);
    if (augment)
      preprocess_train(img, pre_, *augment, dst);
    else
      preprocess_eval(img, pre_, dst);
  }
  std::string describe(index_t i) const override {
    for (const auto& [file, first] : files_)
      if (i >= first) return sparsimix::detail::concat(file, " record ", i - first);  // files_ is in reverse order
    return sparsimix::detail::concat("record ", i);
  }
  static constexpr index_t record_pixels = 3072;  // 32 x 32 x 3

 private:
  std::vector<std::uint8_t> pixels_;
  std::vector<std::pair<std::string, index_t>> files_;  // (file, first record), last file first
  preprocess_options pre_;
};

// Loads `split` ("train" or "test") of CIFAR-10 or -100 from `dir`. `limit` > 0 keeps the
// first `limit` records. Throws io_error for a missing file, format_error naming the file for
// a size that is not a whole number of records or a label out of range.
inline image_dataset load_cifar(const std::string& dir, cifar_kind kind, const std::string& split,
                                const preprocess_options& pre, index_t limit = 0) {
  using sparsimix::detail::concat;
  if (split != "train" && split != "test") throw config_error(concat("cifar: unknown split '", split, "'"));
  const index_t label_bytes = kind == cifar_kind::cifar10 ? 1 : 2;
  const index_t classes = kind == cifar_kind::cifar10 ? 10 : 100;
  const index_t record = label_bytes + cifar_source::record_pixels;
  std::vector<std::uint8_t> pixels;
  std::vector<std::int64_t> labels;
  std::vector<std::pair<std::string, index_t>> files;
  for (const auto& path : cifar_files(dir, kind, split)) {
    if (limit > 0 && static_cast<index_t>(labels.size()) >= limit) break;
    io::require_input_file(path, kind == cifar_kind::cifar10 ? "CIFAR-10 file" : "CIFAR-100 file");
    const auto bytes = static_cast<index_t>(std::filesystem::file_size(path));
    if (bytes == 0 || bytes % record != 0)
      throw format_error(concat(path, ": size ", bytes, " bytes is not a whole number of ", record, "-byte ",
                                kind == cifar_kind::cifar10 ? "CIFAR-10" : "CIFAR-100", " records"));
    std::ifstream in(path, std::ios::binary);
    if (!in) throw io_error(concat("cannot open '", path, "'"));
    files.emplace_back(path, static_cast<index_t>(labels.size()));
    std::vector<std::uint8_t> rec(static_cast<std::size_t>(record));
    for (index_t r = 0; r < bytes / record; ++r) {
      if (limit > 0 && static_cast<index_t>(labels.size()) >= limit) break;
      if (!in.read(reinterpret_cast<char*>(rec.data()), record))
        throw format_error(concat(path, ": read failed at record ", r, " (file changed while reading?)"));
      const index_t y = rec[static_cast<std::size_t>(label_bytes - 1)];
      if (y >= classes)
        throw format_error(concat(path, ": record ", r, " has label ", y, ", expected 0..", classes - 1));
      labels.push_back(y);
      pixels.insert(pixels.end(), rec.begin() + label_bytes, rec.end());
    }
  }
  std::reverse(files.begin(), files.end());
  Tensor<std::int64_t> labs(Shape{static_cast<index_t>(labels.size())});
  std::copy(labels.begin(), labels.end(), labs.data());
  return image_dataset(std::make_shared<cifar_source>(std::move(pixels), std::move(files), pre), std::move(labs));
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::data

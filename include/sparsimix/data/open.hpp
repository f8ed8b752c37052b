// One entry point for every data format the commands read (--data DIR), told apart by the
// files DIR holds:
//   Fashion-MNIST   train-images-idx3-ubyte[.gz] ...    (in memory, normalised as before)
//   CIFAR-10        data_batch_1.bin ... test_batch.bin  (streamed from 8-bit memory)
//   CIFAR-100       train.bin, test.bin                  (streamed from 8-bit memory)
//   image folder    train/CLASS/..., val/CLASS/...       (streamed from disk)
// The "test" split of an image folder is val/ (ImageNet's layout); model selection holds
// images out of train/ (load_train_val).
#pragma once
#include <filesystem>
#include <numeric>
#include <string>
#include <string_view>

#include "cifar.hpp"
#include "idx.hpp"
#include "image_folder.hpp"
#include "loader.hpp"

namespace sparsimix::data {
SPARSIMIX_ABI_BEGIN

// The layouts --data may hold.
enum class dataset_format { fashion_mnist, cifar10, cifar100, image_folder };
// The names reports use.
inline constexpr sparsimix::detail::enum_table<dataset_format, 4> dataset_format_names{
    {{dataset_format::fashion_mnist, "fashion-mnist"},
     {dataset_format::cifar10, "cifar-10"},
     {dataset_format::cifar100, "cifar-100"},
     {dataset_format::image_folder, "image-folder"}}};
// The format's name.
constexpr std::string_view to_string(dataset_format f) noexcept {
  return sparsimix::detail::enum_to_string(dataset_format_names, f);
}

// The format of the files in `dir`; throws io_error when `dir` is not a folder and
// format_error listing the layouts when none matches.
inline dataset_format detect_dataset_format(const std::string& dir) {
  namespace fs = std::filesystem;
  using sparsimix::detail::concat;
  std::error_code ec;
  if (!fs::exists(dir, ec))
    throw io_error(concat("--data '", dir, "' does not exist",
                          dir == fashion_mnist_default_dir ? " (install Debian's dataset-fashion-mnist package, or pass --data DIR)"
                                                           : ""));
  if (!fs::is_directory(dir, ec)) throw io_error(concat("--data '", dir, "' is not a folder"));
  const auto has = [&](const char* name) { return fs::exists(fs::path(dir) / name, ec); };
  if (has("train-images-idx3-ubyte.gz") || has("train-images-idx3-ubyte") || has("t10k-images-idx3-ubyte.gz") ||
      has("t10k-images-idx3-ubyte"))
    return dataset_format::fashion_mnist;
  if (has("data_batch_1.bin") || has("test_batch.bin")) return dataset_format::cifar10;
  if (has("train.bin") || has("test.bin")) return dataset_format::cifar100;
  if (fs::is_directory(fs::path(dir) / "train", ec) || fs::is_directory(fs::path(dir) / "val", ec))
    return dataset_format::image_folder;
  throw format_error(concat("--data '", dir,
                            "' holds no data sparsimix reads: expected Fashion-MNIST IDX files "
                            "(train-images-idx3-ubyte.gz ...), CIFAR-10 (data_batch_1.bin ... test_batch.bin), "
                            "CIFAR-100 (train.bin, test.bin) or an image folder (train/<class>/*.jpg, val/<class>/*.jpg)"));
}

// The evaluation crop fraction a format uses unless told otherwise: DeiT's 0.875 for image
// folders; 1 for CIFAR, whose images are already the size models are trained at.
inline double default_crop_pct(dataset_format f) { return f == dataset_format::image_folder ? 0.875 : 1.0; }

// Split "train" or "test" of the data in `dir` (the test split of an image folder is val/).
// Images become [pre.channels, pre.img_size, pre.img_size]; Fashion-MNIST ignores `pre` (its
// images are 1x28x28, normalised with its own statistics). `limit` > 0 keeps the first
// `limit` examples.
inline image_dataset load_dataset(const std::string& dir, const std::string& split, const preprocess_options& pre,
                                  index_t limit = 0) {
  namespace fs = std::filesystem;
  using sparsimix::detail::concat;
  if (split != "train" && split != "test") throw config_error(concat("load_dataset: unknown split '", split, "'"));
  const dataset_format f = detect_dataset_format(dir);
  image_dataset ds;
  switch (f) {
    case dataset_format::fashion_mnist:
      return load_fashion_mnist(dir, split, limit);
    case dataset_format::cifar10:
    case dataset_format::cifar100:
      return load_cifar(dir, f == dataset_format::cifar10 ? cifar_kind::cifar10 : cifar_kind::cifar100, split, pre, limit);
    case dataset_format::image_folder: {
      // Classes always come from train/, so labels mean the same in both splits.
      const auto train_classes = index_image_folder((fs::path(dir) / "train").string()).classes;
      ds = split == "train" ? load_image_folder_split((fs::path(dir) / "train").string(), pre)
                            : load_image_folder_split((fs::path(dir) / "val").string(), pre, &train_classes);
      break;
    }
  }
  if (limit > 0 && limit < ds.size()) {
    std::vector<index_t> keep(static_cast<std::size_t>(limit));
    std::iota(keep.begin(), keep.end(), index_t{0});
    ds = ds.subset(keep);
  }
  return ds;
}

// Training and validation images from the train split: `val_size` examples held out (the last
// ones for Fashion-MNIST and CIFAR, whose files are in random order; a fixed random draw for
// image folders, which are stored class by class). Except for Fashion-MNIST (whose splits
// earlier results rest on), at most a tenth of the split is held out, so small folders work.
inline std::pair<image_dataset, image_dataset> load_train_val(const std::string& dir, const preprocess_options& pre,
                                                              index_t val_size, index_t train_limit = 0) {
  const dataset_format f = detect_dataset_format(dir);
  const bool folder = f == dataset_format::image_folder;
  // A folder's first images are its first classes: limit after the random draw instead.
  const image_dataset all = load_dataset(dir, "train", pre, !folder && train_limit > 0 ? train_limit + val_size : 0);
  const index_t n = f == dataset_format::fashion_mnist ? val_size : std::max<index_t>(1, std::min(val_size, all.size() / 10));
  if (all.size() <= n)
    throw format_error(sparsimix::detail::concat("--data '", dir, "': the training split has ", all.size(),
                                                 " images, too few to hold out ", n, " for validation"));
  if (!folder) return split_tail(all, n);
  std::vector<index_t> order(static_cast<std::size_t>(all.size()));
  std::iota(order.begin(), order.end(), index_t{0});
  Rng rng(0);  // the same held-out images in every run
  rng.shuffle(order.begin(), order.end());
  const index_t keep = train_limit > 0 ? std::min(train_limit, all.size() - n) : all.size() - n;
  std::vector<index_t> held(order.begin(), order.begin() + n), kept(order.begin() + n, order.begin() + n + keep);
  std::sort(held.begin(), held.end());
  std::sort(kept.begin(), kept.end());
  return {all.subset(kept), all.subset(held)};
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::data

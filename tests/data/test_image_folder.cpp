// Image folders, CIFAR binaries, format detection and the streaming batch loader.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include <sparsimix/data/open.hpp>

using namespace sparsimix;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  const auto d = fs::temp_directory_path() / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

const fs::path& golden_images_dir() {
  static const fs::path dir = fs::path(SPARSIMIX_GOLDEN_DIR) / "preprocess_images";
  return dir;
}

// DIR/train/{cat,dog,emu}/ and DIR/val/{cat,dog}/ from the golden images (odd sizes, modes).
fs::path make_folder(const std::string& name) {
  const auto root = fresh_dir(name);
  const std::vector<std::pair<std::string, std::vector<std::string>>> train = {
      {"dog", {"rgb_odd.jpg", "palette.png", "one_bit.png"}},
      {"cat", {"gray_tall.jpg", "rgba.png"}},
      {"emu", {"rgb_big.png", "gray_odd.png", "rgb_odd.jpg", "rgba.png"}}};
  for (const auto& [cls, files] : train) {
    fs::create_directories(root / "train" / cls / "sub");
    for (std::size_t i = 0; i < files.size(); ++i)
      fs::copy_file(golden_images_dir() / files[i], root / "train" / cls / (i == 2 ? "sub" : "") /
                                                         ("img" + std::to_string(i) + fs::path(files[i]).extension().string()));
  }
  for (const std::string cls : {"cat", "dog"}) {
    fs::create_directories(root / "val" / cls);
    fs::copy_file(golden_images_dir() / "rgb_odd.jpg", root / "val" / cls / "a.jpg");
  }
  std::ofstream(root / "train" / "cat" / "notes.txt") << "not an image, skipped";
  return root;
}

data::preprocess_options small_rgb() {
  data::preprocess_options o;
  o.img_size = 16;
  o.channels = 3;
  return o;
}

void write_cifar(const fs::path& file, int label_bytes, const std::vector<int>& labels) {
  std::ofstream out(file, std::ios::binary);
  for (std::size_t r = 0; r < labels.size(); ++r) {
    if (label_bytes == 2) out.put(static_cast<char>(labels[r] % 20));  // coarse
    out.put(static_cast<char>(labels[r]));
    for (int c = 0; c < 3; ++c)
      for (int p = 0; p < 1024; ++p) out.put(static_cast<char>((p + 50 * c + 7 * static_cast<int>(r)) % 256));
  }
}

}  // namespace

TEST_CASE("an image folder lists classes and files as torchvision's ImageFolder does", "[data][folder]") {
  const auto root = make_folder("sparsimix_folder_index");
  const auto idx = data::index_image_folder((root / "train").string());
  REQUIRE(idx.classes == std::vector<std::string>{"cat", "dog", "emu"});
  REQUIRE(idx.files.size() == 9);
  REQUIRE(idx.labels == std::vector<std::int64_t>{0, 0, 1, 1, 1, 2, 2, 2, 2});
  // Sorted by folder, then name: train/dog/img0, train/dog/img1, then train/dog/sub/img2.
  REQUIRE(fs::path(idx.files[4]).parent_path().filename() == "sub");
  REQUIRE(fs::path(idx.files[2]).filename() == "img0.jpg");
  // Validation takes train's classes: val/dog is label 1 although val has no emu.
  const auto val = data::load_dataset(root.string(), "test", small_rgb());
  REQUIRE(val.size() == 2);
  REQUIRE(val.labels.data()[1] == 1);
  REQUIRE(val.streamed());
  REQUIRE(val.image_shape() == Shape{3, 16, 16});
  fs::remove_all(root);
}

TEST_CASE("image folder errors name the folder", "[data][folder][errors]") {
  const auto root = make_folder("sparsimix_folder_errors");
  fs::create_directories(root / "val" / "yak");
  fs::copy_file(golden_images_dir() / "rgb_odd.jpg", root / "val" / "yak" / "a.jpg");
  REQUIRE_THROWS_WITH(data::load_dataset(root.string(), "test", small_rgb()),
                      Catch::Contains("class 'yak'") && Catch::Contains("not a class of the training folder"));
  fs::remove_all(root / "val" / "yak");
  fs::create_directories(root / "train" / "fox");
  REQUIRE_THROWS_WITH(data::load_dataset(root.string(), "train", small_rgb()),
                      Catch::Contains((root / "train" / "fox").string()) && Catch::Contains("has no .jpg, .jpeg or .png"));
  const auto empty = fresh_dir("sparsimix_folder_empty");
  fs::create_directories(empty / "train");
  REQUIRE_THROWS_WITH(data::load_dataset(empty.string(), "train", small_rgb()), Catch::Contains("no class subfolders"));
  const auto nothing = fresh_dir("sparsimix_folder_nothing");
  REQUIRE_THROWS_WITH(data::detect_dataset_format(nothing.string()), Catch::Contains("holds no data sparsimix reads"));
  REQUIRE_THROWS_WITH(data::detect_dataset_format((nothing / "absent").string()), Catch::Contains("does not exist"));
  // A corrupt image fails the batch that reads it, naming the file.
  fs::remove_all(root / "train" / "fox");
  std::ofstream(root / "train" / "cat" / "zz_broken.png", std::ios::binary) << "\x89PNG\r\n\x1a\n broken";
  const auto train = data::load_dataset(root.string(), "train", small_rgb());
  std::vector<float> out(static_cast<std::size_t>(train.size() * train.image_numel()));
  REQUIRE_THROWS_WITH(train.copy_images(0, train.size(), out.data()), Catch::Contains("zz_broken.png"));
  for (const auto& d : {root, empty, nothing}) fs::remove_all(d);
}

TEST_CASE("a streamed folder gives the same batches on 1 or 3 decoding threads, with or without prefetch",
          "[data][folder][loader]") {
  const auto root = make_folder("sparsimix_folder_loader");
  auto ds = data::load_dataset(root.string(), "train", small_rgb());
  const index_t per = ds.image_numel();
  for (const bool augment : {false, true}) {
    std::vector<std::vector<float>> runs;
    for (const int threads : {1, 3}) {
      ds.decode_threads = threads;
      data::loader_options lo;
      lo.batch = 4;
      lo.augment = augment;
      lo.seed = 11;
      lo.prefetch = threads == 1 ? 0 : 2;
      data::batch_loader loader(ds, lo);
      std::vector<float> all;
      Tensor<float> images;
      std::vector<index_t> labels;
      for (index_t epoch = 0; epoch < 2; ++epoch) {
        loader.start_epoch(epoch);
        while (loader.next(images, labels)) all.insert(all.end(), images.data(), images.data() + images.numel());
      }
      REQUIRE(all.size() == static_cast<std::size_t>(2 * 2 * 4 * per));
      REQUIRE(loader.stats().images == 16);
      runs.push_back(all);
    }
    REQUIRE(runs[0] == runs[1]);
  }
  // Without augmentation a batch holds exactly the evaluation transform of its examples.
  data::loader_options lo;
  lo.batch = 3;
  lo.shuffle = false;
  data::batch_loader loader(ds, lo);
  Tensor<float> images;
  std::vector<index_t> labels;
  REQUIRE(loader.next(images, labels));
  std::vector<float> direct(static_cast<std::size_t>(3 * per));
  ds.copy_images(0, 3, direct.data());
  REQUIRE(std::equal(direct.begin(), direct.end(), images.data()));
  REQUIRE(labels == std::vector<index_t>{0, 0, 1});
  fs::remove_all(root);
}

TEST_CASE("train and validation split an image folder at random, the same way each run", "[data][folder]") {
  const auto root = make_folder("sparsimix_folder_split");
  const auto [tr, va] = data::load_train_val(root.string(), small_rgb(), 5000);
  REQUIRE(va.size() == 1);  // at most a tenth of 9 images, at least one
  REQUIRE(tr.size() == 8);
  const auto [tr2, va2] = data::load_train_val(root.string(), small_rgb(), 5000);
  REQUIRE(va2.indices == va.indices);
  const auto [tr3, va3] = data::load_train_val(root.string(), small_rgb(), 5000, 3);
  REQUIRE(tr3.size() == 3);
  fs::remove_all(root);
}

TEST_CASE("CIFAR-10 and CIFAR-100 binaries load with their labels and planar pixels", "[data][cifar]") {
  const auto d10 = fresh_dir("sparsimix_cifar10");
  for (int b = 1; b <= 5; ++b) write_cifar(d10 / ("data_batch_" + std::to_string(b) + ".bin"), 1, {b, 9});
  write_cifar(d10 / "test_batch.bin", 1, {3, 4, 5});
  REQUIRE(data::detect_dataset_format(d10.string()) == data::dataset_format::cifar10);
  data::preprocess_options o;
  o.img_size = 32;
  o.crop_pct = 1.0;
  o.mean = {0, 0, 0};
  o.std = {1, 1, 1};
  const auto train = data::load_dataset(d10.string(), "train", o);
  REQUIRE(train.size() == 10);
  REQUIRE(train.labels.data()[2] == 2);
  REQUIRE(train.labels.data()[3] == 9);
  // At the images' own size the transform is the identity: pixel p of channel c of record r.
  std::vector<float> img(3 * 32 * 32);
  train.copy_images(3, 1, img.data());
  for (int c = 0; c < 3; ++c)
    for (int p : {0, 77, 1023}) REQUIRE(img[static_cast<std::size_t>(c * 1024 + p)] == Approx(((p + 50 * c + 7) % 256) / 255.0).margin(1e-6));
  REQUIRE(train.describe(3).find("data_batch_2.bin record 1") != std::string::npos);
  REQUIRE(data::load_dataset(d10.string(), "test", o, 2).size() == 2);
  // Bad files: a size that is not whole records, a label out of range.
  std::ofstream(d10 / "test_batch.bin", std::ios::binary | std::ios::app) << "x";
  REQUIRE_THROWS_WITH(data::load_dataset(d10.string(), "test", o),
                      Catch::Contains("test_batch.bin") && Catch::Contains("not a whole number of 3073-byte"));
  write_cifar(d10 / "test_batch.bin", 1, {3, 12});
  REQUIRE_THROWS_WITH(data::load_dataset(d10.string(), "test", o),
                      Catch::Contains("record 1 has label 12, expected 0..9"));

  const auto d100 = fresh_dir("sparsimix_cifar100");
  write_cifar(d100 / "train.bin", 2, {42, 99, 0});
  write_cifar(d100 / "test.bin", 2, {57});
  REQUIRE(data::detect_dataset_format(d100.string()) == data::dataset_format::cifar100);
  const auto t100 = data::load_dataset(d100.string(), "train", o);
  REQUIRE(t100.labels.data()[1] == 99);  // the fine label, not the coarse one
  for (const auto& d : {d10, d100}) fs::remove_all(d);
}

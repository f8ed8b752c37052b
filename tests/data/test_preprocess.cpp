// Decoding and DeiT preprocessing against PIL and torchvision 0.14 (tests/golden/gen_preprocess.py).
#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <sparsimix/data/preprocess.hpp>

#include "support/golden.hpp"

using namespace sparsimix;

namespace {

const std::filesystem::path& preprocess_dir() {
  static const std::filesystem::path dir = std::filesystem::path(SPARSIMIX_GOLDEN_DIR) / "preprocess_images";
  return dir;
}

// name -> file, from the golden file's metadata "images" ("rgb_odd=rgb_odd.jpg,...").
std::vector<std::pair<std::string, std::string>> golden_images(const io::safetensors_file& g) {
  std::vector<std::pair<std::string, std::string>> out;
  std::stringstream list(g.metadata().at("images"));
  for (std::string item; std::getline(list, item, ',');) {
    const auto eq = item.find('=');
    out.emplace_back(item.substr(0, eq), item.substr(eq + 1));
  }
  return out;
}

Tensor<float> run_eval(const data::decoded_image& img, index_t size, data::interpolation f, data::resize_rounding r) {
  data::preprocess_options o;
  o.img_size = size;
  o.channels = img.channels;
  o.interp = f;
  o.rounding = r;
  Tensor<float> out(Shape{img.channels, size, size});
  data::preprocess_eval(img, o, out.data());
  return out;
}

std::string copy_truncated(const std::filesystem::path& src, const std::string& name, double keep) {
  std::ifstream in(src, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto p = (std::filesystem::temp_directory_path() / name).string();
  std::ofstream(p, std::ios::binary) << bytes.substr(0, static_cast<std::size_t>(static_cast<double>(bytes.size()) * keep));
  return p;
}

}  // namespace

TEST_CASE("decode_image_file gives PIL's pixels for JPEG and PNG of every mode", "[data][decode][golden]") {
  const auto g = test::golden("preprocess.safetensors");
  const auto images = golden_images(g);
  REQUIRE(images.size() == 7);
  for (const auto& [name, file] : images) {
    const auto raw = data::decode_image_file((preprocess_dir() / file).string());
    for (index_t ch : {1, 3}) {
      INFO(name << " as " << ch << " channels");
      const auto img = data::convert_channels(raw, ch);
      const auto expected = g.get<float>("decoded." + name + "." + std::to_string(ch));
      REQUIRE(expected.shape() == Shape{img.height, img.width, ch});
      index_t differ = 0;
      for (index_t i = 0; i < expected.numel(); ++i) differ += static_cast<float>(img.pixels[static_cast<std::size_t>(i)]) != expected.data()[i];
      REQUIRE(differ == 0);
    }
  }
}

TEST_CASE("the evaluation transform equals torchvision's on PIL images and on tensors", "[data][preprocess][golden]") {
  // resize(floor(S / 0.875)), center_crop(S), normalize: "pil" is timm's path (PIL's 8-bit
  // resize), "tensor" torchvision's float path with antialias=True.
  const auto g = test::golden("preprocess.safetensors");
  for (const auto& [name, file] : golden_images(g)) {
    const auto raw = data::decode_image_file((preprocess_dir() / file).string());
    for (index_t ch : {1, 3})
      for (index_t size : {24, 48})
        for (const auto f : {data::interpolation::bicubic, data::interpolation::bilinear}) {
          INFO(name << " " << size << " " << to_string(f) << " " << ch);
          const auto img = data::convert_channels(raw, ch);
          const auto suffix = "." + name + "." + std::to_string(size) + "." + std::string(to_string(f)) + "." + std::to_string(ch);
          SPARSIMIX_REQUIRE_CLOSE(run_eval(img, size, f, data::resize_rounding::pil), g.get<float>("pil" + suffix), 0.0, 1e-6);
          SPARSIMIX_REQUIRE_CLOSE(run_eval(img, size, f, data::resize_rounding::tensor), g.get<float>("eval" + suffix), 0.0, 2e-5);
        }
  }
}

TEST_CASE("resample of a box equals torchvision's resized_crop", "[data][preprocess][golden]") {
  const auto g = test::golden("preprocess.safetensors");
  for (const auto& [name, file] : golden_images(g)) {
    const auto img = data::convert_channels(data::decode_image_file((preprocess_dir() / file).string()), 3);
    const auto b = g.get<std::int64_t>("crop_box." + name);
    const data::crop_box box{b.data()[0], b.data()[1], b.data()[2], b.data()[3]};
    for (const auto f : {data::interpolation::bicubic, data::interpolation::bilinear}) {
      INFO(name << " " << to_string(f));
      Tensor<float> got(Shape{3, 24, 24}), pil(Shape{3, 24, 24});
      data::resample(img, box, 24, 24, f, false, got.data(), data::resize_rounding::tensor);
      SPARSIMIX_REQUIRE_CLOSE(got, g.get<float>("crop." + name + "." + std::string(to_string(f))), 0.0, 1e-5);
      data::resample(img, box, 24, 24, f, false, pil.data(), data::resize_rounding::pil);
      SPARSIMIX_REQUIRE_CLOSE(pil, g.get<float>("crop_pil." + name + "." + std::string(to_string(f))), 0.0, 0.0);
      // The flip mirrors columns.
      Tensor<float> flipped(Shape{3, 24, 24});
      data::resample(img, box, 24, 24, f, true, flipped.data(), data::resize_rounding::pil);
      REQUIRE(flipped(1, 5, 0) == pil(1, 5, 23));
      REQUIRE(flipped(2, 17, 9) == pil(2, 17, 14));
    }
  }
}

TEST_CASE("random_resized_crop_box draws boxes inside the image within the area and ratio ranges", "[data][preprocess]") {
  data::preprocess_options o;
  Rng rng(3);
  for (int i = 0; i < 2000; ++i) {
    const index_t h = 100 + static_cast<index_t>(rng.below(300)), w = 100 + static_cast<index_t>(rng.below(300));
    const auto b = data::random_resized_crop_box(rng, h, w, o);
    REQUIRE(b.top >= 0);
    REQUIRE(b.left >= 0);
    REQUIRE(b.height >= 1);
    REQUIRE(b.width >= 1);
    REQUIRE(b.top + b.height <= h);
    REQUIRE(b.left + b.width <= w);
    const double frac = static_cast<double>(b.height * b.width) / static_cast<double>(h * w);
    const double ratio = static_cast<double>(b.width) / static_cast<double>(b.height);
    // Rounding sides of >= 28 pixels to whole pixels moves area and ratio by under 10%.
    REQUIRE(frac >= 0.08 * 0.9);
    REQUIRE(ratio >= 0.75 * 0.9);
    REQUIRE(ratio <= 4.0 / 3.0 * 1.1);
  }
  // A range that admits only the whole square image returns it.
  o.scale_min = o.scale_max = 1.0;
  o.ratio_min = o.ratio_max = 1.0;
  const auto whole = data::random_resized_crop_box(rng, 40, 40, o);
  REQUIRE((whole.top == 0 && whole.left == 0 && whole.height == 40 && whole.width == 40));
  // No box of ratio 1 and full area fits a 40x80 image: the central crop of the clamped ratio.
  const auto fb = data::random_resized_crop_box(rng, 40, 80, o);
  REQUIRE((fb.top == 0 && fb.left == 20 && fb.height == 40 && fb.width == 40));
}

TEST_CASE("the decoder refuses bad image files, naming the file", "[data][decode][errors]") {
  const auto bad = std::filesystem::path(SPARSIMIX_GOLDEN_DIR) / "preprocess_bad";
  const auto cmyk = (bad / "cmyk.jpg").string(), sixteen = (bad / "sixteen_bit.png").string();
  REQUIRE_THROWS_WITH(data::decode_image_file(cmyk), Catch::Contains(cmyk) && Catch::Contains("CMYK"));
  REQUIRE_THROWS_WITH(data::decode_image_file(sixteen), Catch::Contains(sixteen) && Catch::Contains("bit depth 16"));
  const auto jpg = copy_truncated(preprocess_dir() / "rgb_odd.jpg", "sparsimix_truncated.jpg", 0.5);
  REQUIRE_THROWS_WITH(data::decode_image_file(jpg), Catch::Contains(jpg) && Catch::Contains("corrupt"));
  const auto png = copy_truncated(preprocess_dir() / "rgb_big.png", "sparsimix_truncated.png", 0.5);
  REQUIRE_THROWS_WITH(data::decode_image_file(png), Catch::Contains(png) && Catch::Contains("corrupt or truncated PNG"));
  const auto text = copy_truncated(SPARSIMIX_GOLDEN_DIR "/../CTestTestfile.cmake", "sparsimix_not_an_image.jpg", 1.0);
  REQUIRE_THROWS_WITH(data::decode_image_file(text), Catch::Contains(text) && Catch::Contains("not a JPEG or PNG"));
  REQUIRE_THROWS_AS(data::decode_image_file((bad / "missing.png").string()), io_error);
  for (const auto& p : {jpg, png, text}) std::filesystem::remove(p);
}

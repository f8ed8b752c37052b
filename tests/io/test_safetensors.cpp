#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include <sparsimix/core/rng.hpp>
#include <sparsimix/io/safetensors.hpp>

#include "support/golden.hpp"

using namespace sparsimix;
using io::safetensors_file;

namespace {

// Builds a file from a raw header string and a data buffer (no validation: for bad files).
std::vector<char> raw_file(const std::string& header, const std::string& data, std::uint64_t claimed_len) {
  std::string s;
  for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>((claimed_len >> (8 * i)) & 0xff));
  s += header;
  s += data;
  return std::vector<char>(s.begin(), s.end());
}
std::vector<char> raw_file(const std::string& header, const std::string& data) {
  return raw_file(header, data, header.size());
}

std::string what_of(const std::vector<char>& bytes) {
  try {
    safetensors_file::parse(bytes, "bad.safetensors");
  } catch (const format_error& e) {
    return e.what();
  }
  return "<no error>";
}

}  // namespace

TEST_CASE("safetensors round trip keeps names, shapes, values and metadata", "[io][safetensors]") {
  Rng rng(5);
  Tensor<float> a(Shape{3, 4});
  Tensor<double> b(Shape{2, 1, 3});
  fill_normal(rng, a.data(), a.numel(), 0, 1);
  fill_normal(rng, b.data(), b.numel(), 0, 1);
  Tensor<std::int64_t> labels(Shape{5});
  for (index_t i = 0; i < 5; ++i) labels(i) = i * 1000000007LL;
  io::safetensors_writer w;
  w.add("a", a);
  w.add("b64", b, io::dtype::f64);
  w.add("labels", labels, io::dtype::i64);
  w.set_metadata("format", "pt");
  const std::string bytes = w.serialize();
  // The header is padded to a multiple of 8 (reference writer convention).
  std::uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  REQUIRE(n % 8 == 0);
  auto f = safetensors_file::parse(std::vector<char>(bytes.begin(), bytes.end()), "mem");
  REQUIRE(f.names() == std::vector<std::string>{"a", "b64", "labels"});
  REQUIRE(f.metadata().at("format") == "pt");
  const auto a2 = f.get<float>("a", {3, 4});
  for (index_t i = 0; i < a.numel(); ++i) REQUIRE(a2.data()[i] == a.data()[i]);
  const auto b2 = f.get<double>("b64");
  for (index_t i = 0; i < b.numel(); ++i) REQUIRE(b2.data()[i] == b.data()[i]);
  REQUIRE(f.get<std::int64_t>("labels")(4) == 4 * 1000000007LL);
  REQUIRE_THROWS_WITH(f.get<float>("a", {4, 3}), Catch::Contains("a is [3, 4], expected [4, 3]"));
  REQUIRE_THROWS_WITH(f.get<float>("nope"), Catch::Contains("no tensor named 'nope'"));
}

TEST_CASE("safetensors reads PyTorch-written F16, BF16, F32, F64 and I64", "[io][safetensors][golden]") {
  const auto f = test::golden("safetensors_dtypes.safetensors");
  const auto ref = f.get<double>("ref_f64");
  for (const char* name : {"as_f16", "as_bf16", "as_f32"}) {
    INFO(name);
    // The golden file also holds each tensor converted back to F64 by torch itself.
    const auto got = f.get<float>(name);
    const auto want = f.get<double>(std::string(name) + "_f64");
    for (index_t i = 0; i < got.numel(); ++i) REQUIRE(double(got.data()[i]) == want.data()[i]);
  }
  REQUIRE(f.get<std::int64_t>("ints")(2) == f.get<std::int64_t>("ints_copy")(2));
  REQUIRE(ref.numel() == 12);
}

TEST_CASE("safetensors refuses malformed files with a message naming the problem", "[io][safetensors]") {
  const std::string good_h = R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const std::string eight(8, '\0');
  REQUIRE_NOTHROW(safetensors_file::parse(raw_file(good_h, eight), "ok"));

  CHECK_THAT(what_of({'a', 'b'}), Catch::Contains("shorter than the 8-byte header length"));
  CHECK_THAT(what_of(raw_file(good_h, eight, 200'000'000)), Catch::Contains("exceeds the limit"));
  CHECK_THAT(what_of(raw_file(good_h, eight, good_h.size() + 100)), Catch::Contains("truncated"));
  CHECK_THAT(what_of(raw_file("{not json", "")), Catch::Contains("not valid JSON"));
  CHECK_THAT(what_of(raw_file("[1,2]", "")), Catch::Contains("not a JSON object"));
  CHECK_THAT(what_of(raw_file(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"t":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
                              std::string(16, '\0'))),
             Catch::Contains("duplicate tensor name 't'"));
  CHECK_THAT(what_of(raw_file(R"({"t":{"dtype":"Q8","shape":[2],"data_offsets":[0,8]}})", eight)),
             Catch::Contains("unsupported dtype 'Q8'"));
  CHECK_THAT(what_of(raw_file(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", eight)),
             Catch::Contains("needs 12 bytes but data_offsets span 8"));
  CHECK_THAT(what_of(raw_file(R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", eight)),
             Catch::Contains("not a non-negative integer"));
  // Overlap, gap, out of range, trailing bytes.
  CHECK_THAT(what_of(raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                              std::string(12, '\0'))),
             Catch::Contains("overlapping"));
  CHECK_THAT(what_of(raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                              std::string(12, '\0'))),
             Catch::Contains("gap"));
  CHECK_THAT(what_of(raw_file(good_h, std::string(4, '\0'))), Catch::Contains("truncated"));
  CHECK_THAT(what_of(raw_file(good_h, std::string(12, '\0'))), Catch::Contains("trailing"));
  CHECK_THAT(what_of(raw_file(R"({"__metadata__":{"k":1}})", "")), Catch::Contains("is not a string"));
  CHECK_THAT(what_of(raw_file(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", eight)),
             Catch::Contains("end < begin"));
  CHECK_THAT(what_of(raw_file(R"({"t":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}})", eight)),
             Catch::Contains("overflows 64 bits"));
  CHECK_THAT(what_of(raw_file(R"({"t":{"dtype":"F32","shape":[2199023255552],"data_offsets":[0,8]}})", eight)),
             Catch::Contains("absurd extent"));
  // Huge numbers in the header: nlohmann throws out_of_range, which must still be a format_error.
  CHECK_THAT(what_of(raw_file(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,99999999999999999999999]}})", eight)),
             Catch::Contains("bad.safetensors"));
}

TEST_CASE("safetensors load reports a missing file as io_error", "[io][safetensors]") {
  REQUIRE_THROWS_AS(safetensors_file::load("/nonexistent/model.safetensors"), io_error);
}

TEST_CASE("safetensors writer never replaces a good file with a partial one", "[io][safetensors]") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / "sparsimix_atomic_test";
  fs::create_directories(dir);
  const std::string path = (dir / "m.safetensors").string();
  Tensor<float> t(Shape{4}, 1.5f);
  io::safetensors_writer w;
  w.add("t", t);
  w.write(path);
  // A writer whose stream fails midway: the good file stays, no temporary remains.
  REQUIRE_THROWS_AS(io::write_file_atomically(path, [](std::ostream& os) {
                      os << "partial";
                      throw io_error("simulated failure");
                    }),
                    io_error);
  REQUIRE(safetensors_file::load(path).get<float>("t")(3) == 1.5f);
  std::size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir)) { (void)e; ++files; }
  REQUIRE(files == 1);
  fs::remove_all(dir);
}

TEST_CASE("atomic writes keep what the path names: symlinks, modes, hard links, devices", "[io][atomic]") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / "sparsimix_atomic_names";
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto read = [](const fs::path& p) {
    std::ifstream f(p);
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  };
  auto write_old = [](const fs::path& p) { std::ofstream(p) << "old"; };

  // A symlink stays a link; its target gets the content.
  write_old(dir / "real");
  fs::create_symlink(dir / "real", dir / "link");
  io::write_text_atomically((dir / "link").string(), "new");
  CHECK(fs::is_symlink(dir / "link"));
  CHECK(read(dir / "real") == "new");

  // The mode of an existing file survives the rename.
  write_old(dir / "moded");
  fs::permissions(dir / "moded", fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
  io::write_text_atomically((dir / "moded").string(), "new");
  CHECK((fs::status(dir / "moded").permissions() & fs::perms::all) ==
        (fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read));

  // Both names of a hard-linked file see the new content.
  write_old(dir / "a");
  fs::create_hard_link(dir / "a", dir / "b");
  io::write_text_atomically((dir / "a").string(), "new");
  CHECK(fs::hard_link_count(dir / "a") == 2);
  CHECK(read(dir / "b") == "new");

  // A failing writer leaves a hard-linked file untouched too.
  REQUIRE_THROWS_AS(io::write_file_atomically((dir / "a").string(), [](std::ostream& os) {
                      os << "partial";
                      throw io_error("simulated failure");
                    }),
                    io_error);
  CHECK(read(dir / "b") == "new");

  // A folder is refused by name; so is a device unless asked for.
  CHECK_THROWS_WITH(io::write_text_atomically(dir.string(), "x"), Catch::Contains("is a directory"));
  if (fs::exists("/dev/full") && ::getenv("SPARSIMIX_ALLOW_DEVICE_OUTPUT") == nullptr) {
    CHECK_THROWS_WITH(io::write_text_atomically("/dev/full", "x"), Catch::Contains("is a device"));
    CHECK(fs::is_character_file("/dev/full"));
  }
  fs::remove_all(dir);
}

TEST_CASE("safetensors load names a folder given as a file", "[io][safetensors]") {
  const auto dir = std::filesystem::temp_directory_path().string();
  CHECK_THROWS_WITH(safetensors_file::load(dir), Catch::Contains("is a directory, expected a file"));
}

// safetensors read/write (docs/formats.md section 1).
// File: u64 LE header length N, N bytes of UTF-8 JSON, then the raw little-endian data.
// The reader validates everything before it hands out a single tensor, so a bad file is
// refused whole with a format_error naming the file, the tensor, the expected and the actual.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "../core/tensor.hpp"
#include "atomic_file.hpp"
#include "file_checks.hpp"

namespace sparsimix::io {
SPARSIMIX_ABI_BEGIN

// Element types of a safetensors file sparsimix reads (all five) or writes (f32, f64, i64).
enum class dtype { f32, f64, f16, bf16, i64 };

// The type's name in the file's header ("F32", "BF16", ...).
inline const char* dtype_name(dtype t) noexcept {
  switch (t) {
    case dtype::f32: return "F32";
    case dtype::f64: return "F64";
    case dtype::f16: return "F16";
    case dtype::bf16: return "BF16";
    case dtype::i64: return "I64";
  }
  return "?";
}
// Bytes per element.
inline std::size_t dtype_size(dtype t) noexcept {
  switch (t) {
    case dtype::f32: return 4;
    case dtype::f64: return 8;
    case dtype::f16: return 2;
    case dtype::bf16: return 2;
    case dtype::i64: return 8;
  }
  return 0;
}

// Largest JSON header accepted, in bytes: a bigger length field marks a corrupt file.
inline constexpr std::uint64_t max_header_bytes = 100'000'000;

// One tensor's entry in the header: where its bytes are and how to read them.
struct tensor_record {
  std::string name;                  // state_dict name, like "blocks.0.attn.qkv.weight"
  dtype type = dtype::f32;           // element type in the file
  Shape shape;                       // extents, outermost first
  std::uint64_t begin = 0, end = 0;  // relative to the start of the data buffer
};

namespace detail {
inline float half_to_float(std::uint16_t h) noexcept {
  const std::uint32_t sign = (h & 0x8000u) << 16;
  std::uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal half: normalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400u) == 0) { mant <<= 1; --exp; }
      bits = sign | (exp << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
inline float bf16_to_float(std::uint16_t h) noexcept {
  const std::uint32_t bits = std::uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
}  // namespace detail

// A safetensors file read into memory and validated; tensors are converted to T on request.
class safetensors_file {
 public:
  // Reads and validates a whole file. Throws io_error (missing/unreadable) or format_error.
  static safetensors_file load(const std::string& path) {
    require_input_file(path, "safetensors file");
    std::ifstream in(path, std::ios::binary);
    if (!in) throw io_error(sparsimix::detail::concat("cannot open '", path, "' (missing or unreadable)"));
    in.seekg(0, std::ios::end);
    const auto size = static_cast<std::streamoff>(in.tellg());
    in.seekg(0);
    std::vector<char> bytes(static_cast<std::size_t>(size));
    if (size > 0 && !in.read(bytes.data(), size)) throw io_error(sparsimix::detail::concat("cannot read '", path, "'"));
    return parse(std::move(bytes), path);
  }

  // Validates an in-memory file; `source` names it in error messages.
  static safetensors_file parse(std::vector<char> bytes, std::string source) {
    safetensors_file f;
    f.source_ = std::move(source);
    f.bytes_ = std::move(bytes);
    f.validate();
    return f;
  }

  // The file's path (or the `source` given to parse), for messages.
  const std::string& source() const noexcept { return source_; }
  // Every tensor's entry, in the header's order.
  const std::vector<tensor_record>& records() const noexcept { return records_; }
  // The __metadata__ strings (a checkpoint's "format" and "sparsimix.config").
  const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }
  // Whether the file holds a tensor called `name`.
  bool contains(const std::string& name) const noexcept { return index_.count(name) != 0; }
  // Bytes of tensor data after the header.
  std::uint64_t data_size() const noexcept { return bytes_.size() - data_begin_; }
  // Every tensor's name, in the header's order.
  std::vector<std::string> names() const {
    std::vector<std::string> n;
    for (const auto& r : records_) n.push_back(r.name);
    return n;
  }
  // The entry of tensor `name`; throws format_error when there is none.
  const tensor_record& record(const std::string& name) const {
    auto it = index_.find(name);
    if (it == index_.end())
      throw format_error(sparsimix::detail::concat(source_, ": no tensor named '", name, "'"));
    return records_[it->second];
  }

  // The tensor converted to T (float types convert; I64 converts to any T).
  template <class T>
  Tensor<T> get(const std::string& name) const {
    const tensor_record& r = record(name);
    Tensor<T> out(r.shape);
    convert(r, out.data());
    return out;
  }
  // Same, after checking the shape against `expected` (-1 matches any extent).
  template <class T>
  Tensor<T> get(const std::string& name, std::initializer_list<index_t> expected) const {
    check_shape(source_.c_str(), name.c_str(), record(name).shape, expected);
    return get<T>(name);
  }
  // Copies into existing storage of the same shape (for loading parameters in place).
  template <class T>
  void read_into(const std::string& name, TensorView<T> dst) const {
    const tensor_record& r = record(name);
    if (!(r.shape == dst.shape()))
      throw shape_error(sparsimix::detail::concat(source_, ": ", name, " is ", r.shape.str(), ", expected ",
                                                  dst.shape().str()));
    convert(r, dst.data());
  }

 private:
  [[noreturn]] void fail(const std::string& what) const { throw format_error(source_ + ": " + what); }

  void validate() {
    using sparsimix::detail::concat;
    const std::uint64_t size = bytes_.size();
    if (size < 8) fail(concat("file is ", size, " bytes, shorter than the 8-byte header length"));
    std::uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes_[static_cast<std::size_t>(i)]);
    if (n > max_header_bytes) fail(concat("header length ", n, " exceeds the limit of ", max_header_bytes, " bytes"));
    if (n > size - 8) fail(concat("header length ", n, " is larger than the ", size - 8, " bytes after it (truncated file?)"));
    data_begin_ = 8 + n;

    // nlohmann keeps the last of duplicate keys silently: catch them while parsing.
    std::string dup;
    std::set<std::string> seen;
    auto cb = [&](int depth, nlohmann::json::parse_event_t ev, nlohmann::json& parsed) {
      if (depth == 1 && ev == nlohmann::json::parse_event_t::key && dup.empty()) {
        const auto k = parsed.get<std::string>();
        if (!seen.insert(k).second) dup = k;
      }
      return true;
    };
    nlohmann::json header;
    try {
      header = nlohmann::json::parse(bytes_.begin() + 8, bytes_.begin() + static_cast<std::ptrdiff_t>(8 + n), cb);
    } catch (const nlohmann::json::exception& e) {
      // The parser quotes the bytes it choked on: from a random file, that is binary garbage.
      fail(concat("header is not valid JSON: ", sparsimix::detail::printable(e.what(), 160)));
    }
    if (!dup.empty()) fail(concat("duplicate tensor name '", dup, "'"));
    if (!header.is_object()) fail("header is not a JSON object");

    for (auto it = header.begin(); it != header.end(); ++it) {
      const std::string& name = it.key();
      const nlohmann::json& v = it.value();
      if (name == "__metadata__") {
        if (!v.is_object()) fail("__metadata__ is not an object");
        for (auto m = v.begin(); m != v.end(); ++m) {
          if (!m.value().is_string()) fail(concat("__metadata__['", m.key(), "'] is not a string"));
          metadata_[m.key()] = m.value().get<std::string>();
        }
        continue;
      }
      records_.push_back(parse_record(name, v));
    }
    // Tensors must tile the data buffer exactly, in offset order.
    std::stable_sort(records_.begin(), records_.end(),
                     [](const tensor_record& a, const tensor_record& b) { return a.begin < b.begin; });
    const std::uint64_t data_size = size - data_begin_;
    std::uint64_t expected_begin = 0;
    for (const auto& r : records_) {
      if (r.begin != expected_begin)
        fail(concat("tensor '", r.name, "' starts at byte ", r.begin, ", expected ", expected_begin,
                    r.begin < expected_begin ? " (overlapping offsets)" : " (gap in the data buffer)"));
      if (r.end > data_size)
        fail(concat("tensor '", r.name, "' ends at byte ", r.end, " but the data buffer has ", data_size,
                    " bytes (truncated file?)"));
      expected_begin = r.end;
    }
    if (expected_begin != data_size)
      fail(concat("tensors cover ", expected_begin, " bytes but the data buffer has ", data_size,
                  " bytes (trailing or missing data)"));
    for (std::size_t i = 0; i < records_.size(); ++i) index_[records_[i].name] = i;
  }

  tensor_record parse_record(const std::string& name, const nlohmann::json& v) const {
    using sparsimix::detail::concat;
    if (!v.is_object()) fail(concat("entry '", name, "' is not an object"));
    tensor_record r;
    r.name = name;
    const auto dt = v.find("dtype");
    if (dt == v.end() || !dt->is_string()) fail(concat("tensor '", name, "' has no dtype string"));
    const std::string d = dt->get<std::string>();
    if (d == "F32") r.type = dtype::f32;
    else if (d == "F64") r.type = dtype::f64;
    else if (d == "F16") r.type = dtype::f16;
    else if (d == "BF16") r.type = dtype::bf16;
    else if (d == "I64") r.type = dtype::i64;
    else fail(concat("tensor '", name, "' has unsupported dtype '", d, "' (expected F32, F64, F16, BF16 or I64)"));

    const auto sh = v.find("shape");
    if (sh == v.end() || !sh->is_array()) fail(concat("tensor '", name, "' has no shape array"));
    if (sh->size() > static_cast<std::size_t>(Shape::max_rank))
      fail(concat("tensor '", name, "' has rank ", sh->size(), ", sparsimix supports at most ", Shape::max_rank));
    index_t dims[Shape::max_rank] = {};
    std::uint64_t numel = 1;
    bool overflow = false;
    std::size_t k = 0;
    for (const auto& e : *sh) {
      if (!e.is_number_unsigned()) fail(concat("tensor '", name, "' has a shape entry that is not a non-negative integer"));
      const auto x = e.get<std::uint64_t>();
      if (x > (std::uint64_t(1) << 40)) fail(concat("tensor '", name, "' has an absurd extent ", x));
      dims[k++] = static_cast<index_t>(x);
      overflow |= __builtin_mul_overflow(numel, x, &numel);
    }
    switch (k) {
      case 0: r.shape = Shape{}; break;
      case 1: r.shape = Shape{dims[0]}; break;
      case 2: r.shape = Shape{dims[0], dims[1]}; break;
      case 3: r.shape = Shape{dims[0], dims[1], dims[2]}; break;
      default: r.shape = Shape{dims[0], dims[1], dims[2], dims[3]}; break;
    }
    const auto off = v.find("data_offsets");
    if (off == v.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
        !(*off)[1].is_number_unsigned())
      fail(concat("tensor '", name, "' needs data_offsets [begin, end] of non-negative integers"));
    r.begin = (*off)[0].get<std::uint64_t>();
    r.end = (*off)[1].get<std::uint64_t>();
    if (r.end < r.begin) fail(concat("tensor '", name, "' has data_offsets [", r.begin, ", ", r.end, "] with end < begin"));
    std::uint64_t want = 0;
    overflow |= __builtin_mul_overflow(numel, std::uint64_t(dtype_size(r.type)), &want);
    if (overflow) fail(concat("tensor '", name, "' has a byte size that overflows 64 bits"));
    if (want != r.end - r.begin)
      fail(concat("tensor '", name, "' ", r.shape.str(), " ", d, " needs ", want, " bytes but data_offsets span ",
                  r.end - r.begin));
    return r;
  }

  template <class T>
  void convert(const tensor_record& r, T* out) const {
    const char* src = bytes_.data() + data_begin_ + r.begin;
    const std::size_t n = static_cast<std::size_t>(r.shape.numel());
    for (std::size_t i = 0; i < n; ++i) {
      switch (r.type) {
        case dtype::f32: { float v; std::memcpy(&v, src + 4 * i, 4); out[i] = static_cast<T>(v); break; }
        case dtype::f64: { double v; std::memcpy(&v, src + 8 * i, 8); out[i] = static_cast<T>(v); break; }
        case dtype::i64: { std::int64_t v; std::memcpy(&v, src + 8 * i, 8); out[i] = static_cast<T>(v); break; }
        case dtype::f16: { std::uint16_t v; std::memcpy(&v, src + 2 * i, 2); out[i] = static_cast<T>(detail::half_to_float(v)); break; }
        case dtype::bf16: { std::uint16_t v; std::memcpy(&v, src + 2 * i, 2); out[i] = static_cast<T>(detail::bf16_to_float(v)); break; }
      }
    }
  }

  std::string source_;
  std::vector<char> bytes_;
  std::uint64_t data_begin_ = 0;
  std::vector<tensor_record> records_;
  std::map<std::string, std::size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Collects tensors (copied) and writes them atomically: F32 by default, F64 or I64 on request.
class safetensors_writer {
 public:
  // Adds a copy of `t` to be written as `as` (f32, f64 or i64); throws config_error on another
  // type or a name already added.
  template <class T>
  void add(const std::string& name, TensorView<const T> t, dtype as = dtype::f32) {
    if (as != dtype::f32 && as != dtype::f64 && as != dtype::i64)
      throw config_error(sparsimix::detail::concat("safetensors_writer: cannot write '", name, "' as ", dtype_name(as)));
    if (names_.count(name)) throw config_error("safetensors_writer: duplicate tensor name '" + name + "'");
    names_.insert(name);
    entry e{name, as, t.shape(), {}};
    const std::size_t n = static_cast<std::size_t>(t.numel());
    e.bytes.resize(n * dtype_size(as));
    for (std::size_t i = 0; i < n; ++i) {
      if (as == dtype::f32) { float v = static_cast<float>(t.data()[i]); std::memcpy(e.bytes.data() + 4 * i, &v, 4); }
      else if (as == dtype::f64) { double v = static_cast<double>(t.data()[i]); std::memcpy(e.bytes.data() + 8 * i, &v, 8); }
      else { std::int64_t v = static_cast<std::int64_t>(t.data()[i]); std::memcpy(e.bytes.data() + 8 * i, &v, 8); }
    }
    entries_.push_back(std::move(e));
  }
  // Adds a copy of `t`; see the view overload.
  template <class T>
  void add(const std::string& name, const Tensor<T>& t, dtype as = dtype::f32) { add<T>(name, t.view(), as); }
  // Sets one __metadata__ string (replacing an earlier value for `key`).
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }

  // The complete file as bytes (header padded with spaces to a multiple of 8).
  std::string serialize() const {
    nlohmann::ordered_json h = nlohmann::ordered_json::object();
    if (!metadata_.empty()) h["__metadata__"] = metadata_;
    std::uint64_t off = 0;
    for (const auto& e : entries_) {
      std::vector<index_t> shape;
      for (int d = 0; d < e.shape.rank(); ++d) shape.push_back(e.shape[d]);
      h[e.name] = {{"dtype", dtype_name(e.type)}, {"shape", shape}, {"data_offsets", {off, off + e.bytes.size()}}};
      off += e.bytes.size();
    }
    std::string header = h.dump();
    header.append((8 - header.size() % 8) % 8, ' ');
    std::string out(8, '\0');
    std::uint64_t n = header.size();
    for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
    out += header;
    for (const auto& e : entries_) out.append(e.bytes.data(), e.bytes.size());
    return out;
  }
  // Writes to a temporary file and renames it over `path`: a failure never leaves a partial file.
  void write(const std::string& path) const {
    const std::string bytes = serialize();
    write_file_atomically(path, [&](std::ostream& os) { os.write(bytes.data(), static_cast<std::streamsize>(bytes.size())); });
  }

 private:
  struct entry {
    std::string name;
    dtype type;
    Shape shape;
    std::vector<char> bytes;
  };
  std::vector<entry> entries_;
  std::set<std::string> names_;
  std::map<std::string, std::string> metadata_;
};

SPARSIMIX_ABI_END
}  // namespace sparsimix::io

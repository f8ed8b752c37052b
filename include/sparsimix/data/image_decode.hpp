// JPEG and PNG files to 8-bit pixels, with Debian's libjpeg-turbo and libpng: the decoders
// PIL (and so torchvision and timm) uses, at their default settings, so a decoded image is
// the same bytes PyTorch's pipeline sees (stb_image's JPEG decoder rounds differently and
// would put every golden comparison off by a few levels). docs/own-data.md says more.
#pragma once
#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <jpeglib.h>
#include <png.h>

#include "../core/error.hpp"
#include "../io/file_checks.hpp"

namespace sparsimix::data {
SPARSIMIX_ABI_BEGIN

// Pixels of one image: [height, width, channels] row-major, channels 1 (gray) or 3 (RGB).
struct decoded_image {
  index_t height = 0;    // rows
  index_t width = 0;     // columns
  index_t channels = 0;  // 1 (gray) or 3 (RGB)
  std::vector<std::uint8_t> pixels;  // height * width * channels values
};

// The most pixels a decoded image may have: PIL's decompression-bomb limit (twice its
// MAX_IMAGE_PIXELS), so a file whose header claims a giant image fails before allocating.
inline constexpr index_t max_image_pixels = 2 * 89478485;

namespace detail {

// Throws format_error naming the file for an image beyond max_image_pixels.
inline void check_image_size(const std::string& path, index_t width, index_t height) {
  if (width > 0 && height > max_image_pixels / width)
    throw format_error(sparsimix::detail::concat(path, ": image of ", width, "x", height, " pixels is larger than ",
                                                 max_image_pixels, " pixels (a decompression bomb or a corrupt header)"));
}

struct file_closer {
  void operator()(std::FILE* f) const noexcept { std::fclose(f); }
};
using file_ptr = std::unique_ptr<std::FILE, file_closer>;

inline file_ptr open_image_file(const std::string& path) {
  io::require_input_file(path, "image");
  file_ptr f(std::fopen(path.c_str(), "rb"));
  if (!f) throw io_error(sparsimix::detail::concat("cannot open image '", path, "'"));
  return f;
}

// libjpeg reports errors through error_exit, which must not return: jump back to the decoder
// with the library's message, then throw from C++ code (never across libjpeg's C frames).
struct jpeg_error_jump {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};
extern "C" inline void sparsimix_jpeg_error_exit(j_common_ptr cinfo) {
  auto* e = reinterpret_cast<jpeg_error_jump*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, e->message);
  std::longjmp(e->jump, 1);
}
// Warnings (e.g. "premature end of data segment", which libjpeg pads with grey) are errors
// here: a truncated image must not train a model silently.
extern "C" inline void sparsimix_jpeg_emit_message(j_common_ptr cinfo, int level) {
  if (level < 0) sparsimix_jpeg_error_exit(cinfo);
}

inline decoded_image decode_jpeg(const std::string& path, std::FILE* f) {
  decoded_image img;
  jpeg_decompress_struct cinfo{};
  jpeg_error_jump err{};
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = sparsimix_jpeg_error_exit;
  err.mgr.emit_message = sparsimix_jpeg_emit_message;
  // Everything that setjmp must survive is declared above; the rows live in img.pixels.
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    throw format_error(sparsimix::detail::concat(path, ": corrupt or unsupported JPEG (libjpeg: ", err.message, ")"));
  }
  jpeg_create_decompress(&cinfo);
  jpeg_stdio_src(&cinfo, f);
  jpeg_read_header(&cinfo, TRUE);
  const J_COLOR_SPACE space = cinfo.jpeg_color_space;
  if (space == JCS_CMYK || space == JCS_YCCK) {
    jpeg_destroy_decompress(&cinfo);
    throw format_error(path + ": CMYK JPEG is not supported (convert it to RGB or grayscale)");
  }
  cinfo.out_color_space = space == JCS_GRAYSCALE ? JCS_GRAYSCALE : JCS_RGB;
  if (static_cast<index_t>(cinfo.image_width) * static_cast<index_t>(cinfo.image_height) > max_image_pixels) {
    const index_t w = cinfo.image_width, h = cinfo.image_height;
    jpeg_destroy_decompress(&cinfo);
    check_image_size(path, w, h);
  }
  jpeg_start_decompress(&cinfo);
  img.height = cinfo.output_height;
  img.width = cinfo.output_width;
  img.channels = cinfo.output_components;
  img.pixels.resize(static_cast<std::size_t>(img.height * img.width * img.channels));
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = img.pixels.data() + static_cast<std::size_t>(cinfo.output_scanline) * img.width * img.channels;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return img;
}

struct png_error_jump {
  std::jmp_buf jump;
  std::string message;
  std::string unsupported;  // set before png_error for files that are valid but not supported
};
extern "C" inline void sparsimix_png_error(png_structp png, png_const_charp msg) {
  auto* e = static_cast<png_error_jump*>(png_get_error_ptr(png));
  e->message = msg;
  std::longjmp(e->jump, 1);
}
extern "C" inline void sparsimix_png_warning(png_structp, png_const_charp) {}

inline decoded_image decode_png(const std::string& path, std::FILE* f) {
  decoded_image img;
  png_error_jump err;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &err, sparsimix_png_error, sparsimix_png_warning);
  if (!png) throw std::bad_alloc();
  png_infop info = png_create_info_struct(png);
  std::vector<png_bytep> rows;
  if (setjmp(err.jump)) {
    png_destroy_read_struct(&png, &info, nullptr);
    if (!err.unsupported.empty()) throw format_error(path + ": " + err.unsupported);
    throw format_error(sparsimix::detail::concat(path, ": corrupt or truncated PNG (libpng: ", err.message, ")"));
  }
  if (!info) png_error(png, "out of memory");
  png_init_io(png, f);
  png_read_info(png, info);
  const int depth = png_get_bit_depth(png, info), type = png_get_color_type(png, info);
  if (depth == 16) {
    // PIL opens 16-bit PNGs in modes ("I;16", 48-bit RGB) whose 8-bit conversion is its own;
    // rather than guess, ask for 8-bit files.
    err.unsupported = "PNG of bit depth 16 is not supported (expected 1, 2, 4 or 8 bits per sample)";
    png_error(png, "unsupported");
  }
  // Palette -> RGB, 1/2/4-bit gray -> 8-bit, alpha dropped (PIL's convert("RGB"/"L") drops it too).
  if (type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (type == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (type & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
  if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png), png_set_strip_alpha(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  img.width = png_get_image_width(png, info);
  img.height = png_get_image_height(png, info);
  img.channels = png_get_channels(png, info);
  if (img.width > 0 && img.height > max_image_pixels / img.width) {
    err.unsupported = sparsimix::detail::concat("image of ", img.width, "x", img.height, " pixels is larger than ",
                                                max_image_pixels, " pixels (a decompression bomb or a corrupt header)");
    png_error(png, "too large");
  }
  if (img.channels != 1 && img.channels != 3) {
    err.unsupported = sparsimix::detail::concat("PNG with ", img.channels, " channels after conversion is not supported");
    png_error(png, "unsupported");
  }
  img.pixels.resize(static_cast<std::size_t>(img.height * img.width * img.channels));
  rows.resize(static_cast<std::size_t>(img.height));
  for (index_t y = 0; y < img.height; ++y)
    rows[static_cast<std::size_t>(y)] = img.pixels.data() + static_cast<std::size_t>(y * img.width * img.channels);
  png_read_image(png, rows.data());
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return img;
}

}  // namespace detail

// Decodes a JPEG or PNG file (told apart by its first bytes, not its name) to 8-bit gray or
// RGB. Throws format_error naming the file for anything else, a corrupt or truncated file, a
// 16-bit PNG or a CMYK JPEG.
inline decoded_image decode_image_file(const std::string& path) {
  auto f = detail::open_image_file(path);
  unsigned char head[8] = {};
  const std::size_t got = std::fread(head, 1, sizeof head, f.get());
  std::rewind(f.get());
  decoded_image img;
  if (got >= 3 && head[0] == 0xFF && head[1] == 0xD8 && head[2] == 0xFF)
    img = detail::decode_jpeg(path, f.get());
  else if (got == 8 && png_sig_cmp(head, 0, 8) == 0)
    img = detail::decode_png(path, f.get());
  else
    throw format_error(path + ": not a JPEG or PNG file (unknown signature)");
  if (img.width < 1 || img.height < 1) throw format_error(path + ": image has no pixels");
  return img;
}

// To `channels` (1 or 3) as PIL's convert("L") and convert("RGB") do: gray is replicated
// into RGB; RGB to gray is ITU-R 601-2 luma in PIL's 16-bit fixed point.
inline decoded_image convert_channels(decoded_image img, index_t channels) {
  if (img.channels == channels) return img;
  decoded_image out;
  out.height = img.height;
  out.width = img.width;
  out.channels = channels;
  const std::size_t n = static_cast<std::size_t>(img.height * img.width);
  out.pixels.resize(n * static_cast<std::size_t>(channels));
  if (channels == 3 && img.channels == 1) {
    for (std::size_t i = 0; i < n; ++i) out.pixels[3 * i] = out.pixels[3 * i + 1] = out.pixels[3 * i + 2] = img.pixels[i];
  } else if (channels == 1 && img.channels == 3) {
    for (std::size_t i = 0; i < n; ++i) {
      const unsigned v = img.pixels[3 * i] * 19595u + img.pixels[3 * i + 1] * 38470u + img.pixels[3 * i + 2] * 7471u;
      out.pixels[i] = static_cast<std::uint8_t>((v + 0x8000u) >> 16);
    }
  } else {
    throw config_error(sparsimix::detail::concat("convert_channels: ", img.channels, " -> ", channels,
                                                 " channels, expected 1 or 3"));
  }
  return out;
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::data

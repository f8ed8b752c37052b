// `sparsimix inspect | infer | grad | init`: the file-to-file commands other programs (and the
// PyTorch golden tests) drive sparsimix with. Inputs are checked before any computing, outputs
// are checked writable first and written atomically.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "../autograd/tape.hpp"
#include "../io/checkpoint.hpp"
#include "support.hpp"

namespace sparsimix::cli {
SPARSIMIX_ABI_BEGIN

// `inspect`: what a safetensors file holds (names, dtypes, shapes, metadata).
inline int run_inspect(const std::string& path) {
  const auto f = io::safetensors_file::load(path);
  for (const auto& [k, v] : f.metadata()) std::printf("metadata %s = %s\n", k.c_str(), v.c_str());
  for (const auto& r : f.records())
    std::printf("%-48s %-5s %s\n", r.name.c_str(), io::dtype_name(r.type), r.shape.str().c_str());
  return 0;
}

// The F32 tensor `images` [B >= 1, in_chans, img, img] of an input file, finite.
inline Tensor<float> read_images(const io::safetensors_file& in, const vit_config& c, const std::string& path) {
  auto images = in.get<float>("images", {-1, c.in_chans, c.img_size, c.img_size});
  if (images.size(0) == 0)
    throw shape_error(path + ": images is " + images.shape().str() + ", expected at least one image");
  check_finite<float>(path.c_str(), "images", images.view());
  return images;
}

// Logits that overflowed float32 (e.g. pixels near 1e30) are an error, not an answer.
inline void check_logits_finite(const Tensor<float>& logits, const Tensor<float>& images, const std::string& input) {
  for (index_t i = 0; i < logits.numel(); ++i)
    if (!std::isfinite(logits.data()[i])) {
      float peak = 0;
      for (index_t j = 0; j < images.numel(); ++j) peak = std::max(peak, std::abs(images.data()[j]));
      throw numeric_error(detail::concat(input, ": the forward pass overflowed float32 (logits[", i / logits.size(1),
                                         "] is not finite; the largest |pixel| is ", peak, ")"));
    }
}

// `--heads` of a timm checkpoint (0 when not given: embed_dim / 64).
inline io::load_options load_options_with_heads(std::string_view where, const std::optional<index_t>& heads) {
  io::load_options o;
  if (checked_at_least(where, "--heads", heads, 1)) o.num_heads = *heads;
  return o;
}

// What infer and grad both read, every path checked before the model is built.
struct model_and_images {
  HybridViT<float> model;
  io::safetensors_file input;
  Tensor<float> images;
};
inline model_and_images load_model_and_images(std::string_view where, const std::string& model,
                                              const std::string& input, const std::string& out,
                                              const std::optional<index_t>& heads) {
  const auto load = load_options_with_heads(where, heads);
  io::require_output_file(out, "--out");
  auto m = io::load_checkpoint<float>(model, load);
  auto in = io::safetensors_file::load(input);
  auto images = read_images(in, m.config(), input);
  return {std::move(m), std::move(in), std::move(images)};
}

struct infer_args {
  std::string model, input, out;
  bool capture = false;
  std::optional<index_t> heads;  // of a timm checkpoint without sparsimix.config
  data_options data_opt;         // preprocessing when --input is an image or a folder of images
};

// The images of `input` when it is a JPEG/PNG file or a folder of them (recursively, in
// sorted order), with the evaluation transform; their paths in `files`.
inline Tensor<float> read_image_files(const std::string& input, const data_options& o, const vit_config& c,
                                      std::vector<std::string>& files) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(input, ec)) {
    files = data::detail::image_files_under(input);
    if (files.empty()) throw format_error("infer: --input '" + input + "' holds no .jpg, .jpeg or .png files");
  } else {
    files = {input};
  }
  const auto p = make_preprocess(o, c, 0.875);  // image files: DeiT's crop
  Tensor<float> images(Shape{static_cast<index_t>(files.size()), c.in_chans, c.img_size, c.img_size});
  const index_t per = images.numel() / images.size(0);
  parallel_for(images.size(0), [&](index_t i) {
    const auto img = data::convert_channels(data::decode_image_file(files[static_cast<std::size_t>(i)]), c.in_chans);
    data::preprocess_eval(img, p, images.data() + i * per);
  });
  return images;
}

// True when `input` names images rather than a .safetensors file.
inline bool is_image_input(const std::string& input) {
  std::error_code ec;
  return std::filesystem::is_directory(input, ec) || data::detail::is_image_file_name(input);
}

// `infer`: logits (and with capture, block outputs and attention maps) of a checkpoint, on
// the 'images' of a .safetensors file or on JPEG/PNG files (then also 'images', the model's
// preprocessed input, and the file list as metadata "files").
inline int run_infer(const infer_args& a) {
  std::vector<std::string> files;
  std::optional<HybridViT<float>> loaded;
  Tensor<float> images;
  if (is_image_input(a.input)) {
    io::require_output_file(a.out, "--out");
    loaded.emplace(io::load_checkpoint<float>(a.model, load_options_with_heads("infer", a.heads)));
    images = read_image_files(a.input, a.data_opt, loaded->config(), files);
  } else {
    auto mi = load_model_and_images("infer", a.model, a.input, a.out, a.heads);
    loaded.emplace(std::move(mi.model));
    images = std::move(mi.images);
  }
  auto& model = *loaded;
  const auto& c = model.config();
  Tensor<float> logits(Shape{images.size(0), c.num_classes});
  vit_capture<float> cap;
  cap.blocks = cap.maps = a.capture;
  model.forward(images.view(), logits.view(), a.capture ? &cap : nullptr);
  check_logits_finite(logits, images, a.input);
  io::safetensors_writer w;
  w.add("logits", logits);
  if (a.capture) {
    for (index_t i = 0; i < model.depth(); ++i) {
      const auto k = static_cast<std::size_t>(i);
      w.add("blocks." + std::to_string(i) + ".out", cap.block_out[k]);
      if (cap.attn_map[k].numel()) w.add("blocks." + std::to_string(i) + ".attn_map", cap.attn_map[k]);
    }
    if (c.halting) w.add("halting.depth", model.halting().depth(), io::dtype::i64);
  }
  if (!files.empty()) {
    w.add("images", images);
    std::string list;
    for (const auto& f : files) list += (list.empty() ? "" : "\n") + f;
    w.set_metadata("files", list);
  }
  w.write(a.out);
  return 0;
}

struct grad_args {
  std::string model, input, out;
  std::optional<index_t> heads;
};

// `grad`: mean cross-entropy of the logits and d loss / d parameter, in PyTorch's layout.
inline int run_grad(const grad_args& a) {
  auto [model, in, images] = load_model_and_images("grad", a.model, a.input, a.out, a.heads);
  const auto& c = model.config();
  // Class indices are integers: a float tensor (1.5?) is refused, not truncated.
  if (const auto& r = in.record("labels"); r.type != io::dtype::i64)
    throw format_error(detail::concat(a.input, ": labels is ", io::dtype_name(r.type), ", expected I64 class indices"));
  const auto labels = in.get<std::int64_t>("labels", {images.size(0)});
  std::vector<index_t> y(static_cast<std::size_t>(labels.numel()));
  for (index_t i = 0; i < labels.numel(); ++i) {
    if (labels.data()[i] < 0 || labels.data()[i] >= c.num_classes)
      throw format_error(detail::concat(a.input, ": labels[", i, "] is ", labels.data()[i], ", expected 0..",
                                        c.num_classes - 1));
    y[static_cast<std::size_t>(i)] = static_cast<index_t>(labels.data()[i]);
  }
  model.zero_grad();
  Tape<float> tape;
  const Var loss = tape.cross_entropy(model.forward(tape, images.view()), y);
  if (!std::isfinite(tape.item(loss)))
    throw numeric_error(detail::concat(a.input, ": the loss is ", tape.item(loss),
                                       " (the forward pass overflowed float32)"));
  tape.backward(loss);
  io::safetensors_writer w;
  w.add("loss", Tensor<float>(Shape{1}, tape.item(loss)));
  for (const auto& [name, g] : model.state_dict(/*grads=*/true)) w.add("grad." + name, g);
  w.write(a.out);
  return 0;
}

struct init_args {
  std::string config, out;
  std::uint64_t seed = 0;
};

// `init`: a randomly initialised model from a config JSON file, written as a checkpoint.
inline int run_init(const init_args& a) {
  io::require_output_file(a.out, "--out");
  HybridViT<float> model(io::vit_config_from_string(read_text_file(a.config, "config file")));
  Rng rng(a.seed);
  model.init(rng);
  io::save_checkpoint(model, a.out);
  std::printf("%s: %td parameters\n", a.out.c_str(), model.num_parameters());
  return 0;
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::cli

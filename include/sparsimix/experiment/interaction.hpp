// FAR's token-interaction maps (docs/method.md 1.10, docs/study.md): how much each output token
// of a mixer depends on each input token. For a sequential student (mh_lstm, selective_scan)
// the map of head h is G[h, i, j] = sum over channels c of |d s_{i, h} / d x_{j, c}|, where
// s_{i, h} is the sum of output token i's channels in head h's slice (the pre-projection
// output for mixers that have one, mh_lstm; the mixer output otherwise), x the mixer's input
// (the LN1 output), averaged over images. Beside it, the teacher's attention map of the same
// layer (softmax rows averaged over images), and how alike the two are: Spearman's rank
// correlation over all N x N entries and the top-k overlap of each output token's strongest
// inputs (k = ceil(N / 10)).
#pragma once
#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "../autograd/tape.hpp"
#include "../data/dataset.hpp"
#include "../models/vit.hpp"
#include "statistics.hpp"
#include "svg.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// How alike two N x N maps of one head are.
struct map_similarity {
  double spearman = 0;       // rank correlation over all N x N entries
  double top_k_overlap = 0;  // per output token, shared top-k inputs / k, averaged over tokens
};

// Spearman and top-k overlap of two row-major n x n maps (rows: output tokens).
inline map_similarity compare_maps(const double* a, const double* b, index_t n) {
  map_similarity s;
  if (n < 1) return s;
  const auto nn = static_cast<std::size_t>(n * n);
  s.spearman = spearman(std::vector<double>(a, a + nn), std::vector<double>(b, b + nn));
  const index_t k = std::max<index_t>(1, static_cast<index_t>(std::ceil(0.1 * static_cast<double>(n))));
  std::vector<index_t> ia(static_cast<std::size_t>(n)), ib(static_cast<std::size_t>(n));
  double overlap = 0;
  for (index_t i = 0; i < n; ++i) {
    const double* ra = a + i * n;
    const double* rb = b + i * n;
    std::iota(ia.begin(), ia.end(), index_t{0});
    std::iota(ib.begin(), ib.end(), index_t{0});
    // Ties broken by index, so equal maps overlap fully.
    std::partial_sort(ia.begin(), ia.begin() + k, ia.end(), [&](index_t x, index_t y) { return ra[x] > ra[y] || (ra[x] == ra[y] && x < y); });
    std::partial_sort(ib.begin(), ib.begin() + k, ib.end(), [&](index_t x, index_t y) { return rb[x] > rb[y] || (rb[x] == rb[y] && x < y); });
    index_t shared = 0;
    for (index_t p = 0; p < k; ++p)
      shared += std::find(ib.begin(), ib.begin() + k, ia[static_cast<std::size_t>(p)]) != ib.begin() + k;
    overlap += static_cast<double>(shared) / static_cast<double>(k);
  }
  s.top_k_overlap = overlap / static_cast<double>(n);
  return s;
}

// One layer's maps and their likeness.
struct interaction_result {
  index_t layer = 0;            // the block
  std::string mixer;            // the model's mixer kind at that block
  index_t heads = 0, tokens = 0;  // H and N of the maps
  std::vector<double> gradient;   // [H, N, N]: the model's token-interaction map
  std::vector<double> attention;  // [H, N, N]: the reference attention map (empty: none)
  std::vector<map_similarity> per_head;  // gradient vs attention, per head (empty: no reference)
  map_similarity mean;                   // averaged over heads
};

// The token-interaction map of `model`'s block `layer` on the first `count` images of `ds`,
// and beside it the attention map of `reference`'s block `layer` (a teacher; nullptr: the
// model's own when that block is attention, else none). Heads: the model's num_heads slices of
// the output channels.
template <class T>
interaction_result token_interaction(const HybridViT<T>& model, const std::type_identity_t<HybridViT<T>>* reference,
                                     index_t layer,
                                     const data::image_dataset& ds, index_t count, index_t batch = 16) {
  if (layer < 0 || layer >= model.depth())
    throw config_error(detail::concat("token_interaction: layer ", layer, " out of range [0, ", model.depth(), ")"));
  const HybridViT<T>& ref = reference ? *reference : model;
  if (reference && (reference->depth() != model.depth() || reference->config().img_size != model.config().img_size ||
                    reference->config().patch_size != model.config().patch_size))
    throw config_error("token_interaction: the reference model has another depth or token count than the model");
  const bool has_maps = ref.config().mixers.at(static_cast<std::size_t>(layer)).kind() == "attention";
  const index_t n = std::min(count, ds.size());
  if (n < 1) throw config_error(detail::concat("token_interaction: count is ", count, ", expected >= 1 images"));
  const auto& cfg = model.config();
  const index_t H = cfg.num_heads, C = cfg.embed_dim, d = C / H;
  const Shape is = ds.image_shape();
  interaction_result r;
  r.layer = layer;
  r.mixer = cfg.mixers.at(static_cast<std::size_t>(layer)).kind();
  r.heads = H;
  Mixer<T> mixer = model.mixer(layer);  // the tape binds mutable parameters; a copy keeps `model` const
  Tensor<T> images, logits, weights;
  vit_capture<T> cap, ref_cap;
  cap.mixer_inputs = true;
  ref_cap.maps = true;
  Tape<T> tape;
  for (index_t start = 0; start < n; start += batch) {
    const index_t b = std::min(batch, n - start);
    images.resize(Shape{b, is[0], is[1], is[2]});
    ds.copy_images(start, b, images.data());
    logits.resize(Shape{b, cfg.num_classes});
    model.forward(images.view(), logits.view(), &cap);
    const Tensor<T>& x_in = cap.mixer_in.at(static_cast<std::size_t>(layer));
    const index_t N = x_in.size(1);
    if (r.tokens == 0) {
      r.tokens = N;
      r.gradient.assign(static_cast<std::size_t>(H * N * N), 0.0);
      if (has_maps) r.attention.assign(static_cast<std::size_t>(H * N * N), 0.0);
    }
    if (has_maps) {
      ref.forward(images.view(), logits.view(), &ref_cap);
      const Tensor<T>& maps = ref_cap.attn_map.at(static_cast<std::size_t>(layer));  // [b, H, N, N]
      for (index_t e = 0; e < maps.numel(); ++e)
        r.attention[static_cast<std::size_t>(e % (H * N * N))] += static_cast<double>(maps.data()[e]) / static_cast<double>(n);
    }
    weights.resize(x_in.shape());
    // One backward per (output token, head): images are independent, so the batch gives
    // every image's gradient at once.
    for (index_t i = 0; i < N; ++i)
      for (index_t h = 0; h < H; ++h) {
        std::fill(weights.begin(), weights.end(), T(0));
        for (index_t bb = 0; bb < b; ++bb)
          std::fill_n(weights.data() + (bb * N + i) * C + h * d, d, T(1));
        tape.clear();
        const Var x = tape.input(x_in.view(), true);
        const Var s = std::visit(
            [&](auto& m) {
              using M = std::remove_cvref_t<decltype(m)>;
              if constexpr (HasPreProjOutput<M>)
                if (provides_pre_proj_output(m)) return tape.mixer_pre_proj(m, x).second;
              return tape.mixer(m, x);
            },
            mixer);
        tape.backward(tape.sum(tape.mul(s, tape.input(weights.view()))));
        const auto g = tape.grad(x);
        double* row = r.gradient.data() + (h * N + i) * N;
        for (index_t bb = 0; bb < b; ++bb)
          for (index_t j = 0; j < N; ++j) {
            const T* gj = g.data() + (bb * N + j) * C;
            double acc = 0;
            for (index_t c = 0; c < C; ++c) acc += std::abs(static_cast<double>(gj[c]));
            row[j] += acc / static_cast<double>(n);
          }
      }
  }
  if (has_maps) {
    const auto NN = r.tokens * r.tokens;
    for (index_t h = 0; h < H; ++h)
      r.per_head.push_back(compare_maps(r.gradient.data() + h * NN, r.attention.data() + h * NN, r.tokens));
    for (const auto& s : r.per_head) {
      r.mean.spearman += s.spearman / static_cast<double>(H);
      r.mean.top_k_overlap += s.top_k_overlap / static_cast<double>(H);
    }
  }
  return r;
}

// The JSON of one layer's maps: `layer`, `mixer`, `heads`, `tokens`, the similarity to the
// attention map (`spearman`, `top_k_overlap`: means over heads, null without one) and `per_head`.
inline nlohmann::ordered_json to_json(const interaction_result& r) {
  auto heads = nlohmann::ordered_json::array();
  for (const auto& h : r.per_head) heads.push_back({{"spearman", h.spearman}, {"top_k_overlap", h.top_k_overlap}});
  nlohmann::ordered_json j{{"layer", r.layer}, {"mixer", r.mixer}, {"heads", r.heads}, {"tokens", r.tokens}};
  j["spearman"] = r.per_head.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(r.mean.spearman);
  j["top_k_overlap"] = r.per_head.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(r.mean.top_k_overlap);
  j["per_head"] = heads;
  return j;
}

// One layer's maps as SVG heatmaps: per head, the reference attention map (when there is one)
// and the token-interaction map side by side, each row scaled to its own maximum so every output
// token's pattern shows.
inline std::string interaction_svg(const interaction_result& r, const std::string& title) {
  const index_t N = r.tokens;
  // Each panel about 240 px wide whatever N (at least 1 px per token).
  const int cell = static_cast<int>(std::clamp<index_t>(240 / std::max<index_t>(N, 1), 1, 16)), gap = 40, top = 46,
            left = 70;
  const int side = static_cast<int>(N) * cell;
  const int panels = r.attention.empty() ? 1 : 2;
  const int W = std::max(640, left + panels * (side + gap) + 20), H = top + static_cast<int>(r.heads) * (side + gap) + 10;
  std::ostringstream s;
  s << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H
    << "' font-family='sans-serif' font-size='12'>\n";
  s << "<text x='10' y='18' font-size='15'>" << detail::svg_escape(title) << "</text>\n";
  s << "<text x='10' y='36'>rows: output tokens (CLS first), columns: input tokens; each row scaled to its maximum</text>\n";
  const auto NN = N * N;
  for (index_t h = 0; h < r.heads; ++h) {
    const int y0 = top + static_cast<int>(h) * (side + gap) + 14;
    s << "<text x='10' y='" << y0 + side / 2 << "'>head " << h << "</text>\n";
    for (int p = 0; p < panels; ++p) {
      const bool attn = panels == 2 && p == 0;
      const double* m = (attn ? r.attention.data() : r.gradient.data()) + h * NN;
      const int x0 = left + p * (side + gap);
      if (h == 0)
        s << "<text x='" << x0 << "' y='" << y0 - 4 << "'>"
          << (attn ? "teacher attention" : detail::svg_escape(r.mixer) + " interaction") << "</text>\n";
      for (index_t i = 0; i < N; ++i) {
        const double mx = *std::max_element(m + i * N, m + (i + 1) * N);
        for (index_t j = 0; j < N; ++j)
          s << "<rect x='" << x0 + static_cast<int>(j) * cell << "' y='" << y0 + static_cast<int>(i) * cell << "' width='"
            << cell << "' height='" << cell << "' fill='" << detail::heat_colour(mx > 0 ? m[i * N + j] / mx : 0.0) << "'/>";
        s << "\n";
      }
    }
    if (!r.per_head.empty())
      s << "<text x='" << left << "' y='" << y0 + side + 14 << "' font-size='11'>Spearman "
        << detail::svg_number(r.per_head[static_cast<std::size_t>(h)].spearman, 3) << ", top-k overlap "
        << detail::svg_number(r.per_head[static_cast<std::size_t>(h)].top_k_overlap, 3) << "</text>\n";
  }
  s << "</svg>\n";
  return s.str();
}

// Compiled in sparsimix::compiled (docs/build-time.md).
SPARSIMIX_EXTERN_TEMPLATE(interaction_result token_interaction<float>(const HybridViT<float>&, const HybridViT<float>*, index_t, const data::image_dataset&, index_t, index_t))

SPARSIMIX_ABI_END
}  // namespace sparsimix

// The shortest useful sparsimix program: a multi-head LSTM mixer (FAR's replacement for an
// attention layer) on a random batch of token sequences, run forward for inference, then
// forward and backward for training. Every mixer (Attention, MultiHeadLSTM, SelectiveScan or
// your own) has these same three calls: the SeqMixer concept (docs/architecture.md).
#include <cmath>
#include <cstdio>

#include <sparsimix/mixers/mh_lstm.hpp>

using namespace sparsimix;

int main() {
  const index_t B = 2, N = 17, C = 48;  // batch, tokens, channels ([B, N, C] everywhere)
  MultiHeadLSTM<float> lstm({.dim = C, .num_heads = 3});
  Rng rng(0);
  lstm.init(rng);  // PyTorch's default initialisation

  Tensor<float> x(Shape{B, N, C}), y(Shape{B, N, C});
  fill_normal(rng, x.data(), x.numel(), 0.0, 1.0);

  // Inference: no activations kept, no allocation after the first call.
  lstm.forward(x.view(), y.view(), /*mask=*/nullptr);
  std::printf("forward: x %s -> y %s, y[0, 0, 0:3] = %.4f %.4f %.4f\n", x.shape().str().c_str(),
              y.shape().str().c_str(), y(0, 0, 0), y(0, 0, 1), y(0, 0, 2));

  // Training: the forward keeps what backward needs in a cache. Take loss = sum(y^2) / 2, so
  // dloss/dy = y; backward accumulates the parameter gradients and writes dloss/dx.
  MultiHeadLSTM<float>::cache_type cache;
  lstm.forward(x.view(), y.view(), cache, nullptr);
  double loss = 0;
  for (float v : y) loss += 0.5 * double(v) * double(v);
  Tensor<float> dx(Shape{B, N, C});
  lstm.backward(cache, y.view(), dx.view());
  std::printf("loss %.5f\n", loss);
  for (const auto& p : lstm.parameters()) {  // PyTorch names, (value, grad) views
    double g2 = 0;
    for (float g : p.grad) g2 += double(g) * double(g);
    std::printf("  %-34s %-12s |grad| %.4f\n", p.name.c_str(), p.value.shape().str().c_str(), std::sqrt(g2));
  }

  // dloss/dx predicts how the loss moves when x moves along dx: check it against the real change.
  const float h = 1e-2f;
  double dx2 = 0;
  for (index_t i = 0; i < x.numel(); ++i) {
    dx2 += double(dx.data()[i]) * double(dx.data()[i]);
    x.data()[i] += h * dx.data()[i];
  }
  lstm.forward(x.view(), y.view(), nullptr);
  double moved = 0;
  for (float v : y) moved += 0.5 * double(v) * double(v);
  std::printf("x += %.0e * dx changes the loss by %.4e; dx predicts %.4e\n", h, moved - loss, h * dx2);
  const bool ok = std::abs(moved - (loss + h * dx2)) < 0.02 * h * dx2;
  std::printf("%s\n", ok ? "gradient ok" : "FAILED: the gradient does not predict the change");
  return ok ? 0 : 1;
}

// Learning-rate schedule: linear warm-up, then cosine decay to min_lr (docs/method.md 6.8:
// AdamW, cosine, 5% warm-up). For step s = 0, 1, ... (the s-th optimizer update):
//   s <  W:           lr = base * (s + 1) / W
//   W <= s < total:   lr = min + (base - min) * (1 + cos(pi * (s - W) / (total - W))) / 2
//   s >= total:       lr = min
// Warm-up starts at base / W, not 0, so no update is wasted (HF's get_cosine_schedule_with_
// warmup starts at 0); it reaches base at s = W - 1, and the cosine starts from base at s = W.
#pragma once
#include <cmath>

#include "../core/error.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// The training loops' learning rate per step: linear warm-up, then cosine decay to min_lr.
class cosine_schedule {
 public:
  // Throws config_error unless 0 <= min_lr <= base_lr and 0 <= warmup_steps <= total_steps >= 1.
  cosine_schedule(double base_lr, index_t total_steps, index_t warmup_steps = 0, double min_lr = 0)
      : base_(base_lr), min_(min_lr), total_(total_steps), warmup_(warmup_steps) {
    using detail::concat;
    if (!(base_lr >= 0)) throw config_error(concat("cosine_schedule: base_lr is ", base_lr, ", expected >= 0"));
    if (!(min_lr >= 0 && min_lr <= base_lr))
      throw config_error(concat("cosine_schedule: min_lr is ", min_lr, ", expected [0, base_lr = ", base_lr, "]"));
    if (total_steps < 1) throw config_error(concat("cosine_schedule: total_steps is ", total_steps, ", expected >= 1"));
    if (warmup_steps < 0 || warmup_steps > total_steps)
      throw config_error(concat("cosine_schedule: warmup_steps is ", warmup_steps, ", expected [0, total_steps = ",
                                total_steps, "]"));
  }

  // The learning rate for the step-th optimizer update (formula above; negative steps count as 0).
  double operator()(index_t step) const noexcept {
    if (step < 0) step = 0;
    if (step < warmup_) return base_ * static_cast<double>(step + 1) / static_cast<double>(warmup_);
    if (step >= total_) return min_;
    const double progress = static_cast<double>(step - warmup_) / static_cast<double>(total_ - warmup_);
    return min_ + (base_ - min_) * 0.5 * (1.0 + std::cos(3.14159265358979323846 * progress));
  }

  // The peak rate, reached at the end of warm-up.
  double base_lr() const noexcept { return base_; }
  // The floor the cosine decays to, kept after total_steps.
  double min_lr() const noexcept { return min_; }
  // Steps from the start to the end of the decay.
  index_t total_steps() const noexcept { return total_; }
  // Steps of linear warm-up (0: the cosine starts at step 0).
  index_t warmup_steps() const noexcept { return warmup_; }

 private:
  double base_, min_;
  index_t total_, warmup_;
};

SPARSIMIX_ABI_END
}  // namespace sparsimix

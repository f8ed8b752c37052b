// Explicit instantiations of the pipeline's function templates (checkpoints, sparsity,
// training, distillation, the experiment) for float and double; see docs/build-time.md.
#include "sparsimix/distill/analysis.hpp"
#include "sparsimix/distill/distill.hpp"
#include "sparsimix/distill/train.hpp"
#include "sparsimix/experiment/experiment.hpp"
#include "sparsimix/experiment/interaction.hpp"
#include "sparsimix/experiment/study.hpp"
#include "sparsimix/io/checkpoint.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

#define SPARSIMIX_INSTANTIATE_PIPELINE(T)                                                                             \
  template std::vector<layer_sparsity> measure_sparsity<T>(const HybridViT<T>&, const data::image_dataset&, index_t,  \
                                                           index_t);                                                  \
  template eval_result evaluate<T>(const HybridViT<T>&, const data::image_dataset&, index_t, index_t,                 \
                                    std::vector<std::uint8_t>*);                                                 \
  template double measure_latency_ms<T>(const HybridViT<T>&, const data::image_dataset&, int);                        \
  template fit_result fit<T>(HybridViT<T>&, AdamW<T>&, const data::image_dataset&, const data::image_dataset*,        \
                             const fit_options&, const batch_loss_fn<T>&,                                             \
                             const std::function<void(const fit_progress&)>&,                                         \
                             const std::function<void(index_t, const eval_result&)>&);                                \
  template fit_result train_classifier<T>(HybridViT<T>&, const data::image_dataset&, const data::image_dataset*,      \
                                          const fit_options&, double, const std::function<void(const fit_progress&)>&, \
                                          const std::function<void(index_t, const eval_result&)>&);                   \
  template HybridViT<T> make_student<T>(const HybridViT<T>&, const std::vector<index_t>&, const mixer_spec&, Rng&);   \
  template std::set<std::string> teacher_initialised_params<T>(const HybridViT<T>&, const std::set<index_t>&);        \
  template distill_result distill<T>(const HybridViT<T>&, HybridViT<T>&, const std::vector<index_t>&,                 \
                                     const data::image_dataset&, const data::image_dataset*, const distill_options&,  \
                                     const std::function<void(int stage, const fit_progress&)>&,                      \
                                     teacher_cache<T>*);

SPARSIMIX_INSTANTIATE_PIPELINE(float)
SPARSIMIX_INSTANTIATE_PIPELINE(double)
#undef SPARSIMIX_INSTANTIATE_PIPELINE

template experiment_report run_experiment<float>(const data::image_dataset&, const data::image_dataset&,
                                                 const data::image_dataset&, experiment_options,
                                                 const experiment_hooks<float>&, const HybridViT<float>*);
template interaction_result token_interaction<float>(const HybridViT<float>&, const HybridViT<float>*, index_t,
                                                     const data::image_dataset&, index_t, index_t);
template study_report run_study<float>(const data::image_dataset&, const data::image_dataset&,
                                       const data::image_dataset&, study_options, const std::string&, const study_hooks&);

SPARSIMIX_ABI_END
}  // namespace sparsimix

namespace sparsimix::io {
SPARSIMIX_ABI_BEGIN
template HybridViT<float> load_checkpoint<float>(const std::string&, const load_options&);
template HybridViT<double> load_checkpoint<double>(const std::string&, const load_options&);
template void save_checkpoint<float>(HybridViT<float>&, const std::string&);
template void save_checkpoint<double>(HybridViT<double>&, const std::string&);
SPARSIMIX_ABI_END
}  // namespace sparsimix::io

// Image folders in ImageNet's layout, read as torchvision's ImageFolder reads them:
//   DIR/train/CLASS/**/*.{jpg,jpeg,png}   DIR/val/CLASS/**/*.{jpg,jpeg,png}
// class index = position of the subfolder name in sorted order (train's classes), files in
// sorted order within each class. Images are decoded when a batch needs them (data/dataset.hpp
// streams them through a thread pool), so only the file list stays in memory.
#pragma once
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dataset.hpp"
#include "image_decode.hpp"
#include "preprocess.hpp"

namespace sparsimix::data {
SPARSIMIX_ABI_BEGIN

// The files of one split and their classes.
struct image_folder_index {
  std::vector<std::string> classes;  // sorted class folder names; label = position
  std::vector<std::string> files;    // class by class, sorted within each class
  std::vector<std::int64_t> labels;  // one per file
};

namespace detail {

inline bool is_image_file_name(const std::filesystem::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png";
}

// Image files under `dir`, recursively, in os.walk's sorted order (folder, then file name).
inline std::vector<std::string> image_files_under(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  std::vector<std::pair<std::string, std::string>> found;  // (folder, file name)
  for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::follow_directory_symlink);
       it != fs::recursive_directory_iterator(); ++it)
    if (it->is_regular_file() && is_image_file_name(it->path()))
      found.emplace_back(it->path().parent_path().string(), it->path().filename().string());
  std::sort(found.begin(), found.end());
  std::vector<std::string> out;
  out.reserve(found.size());
  for (const auto& [folder, name] : found) out.push_back((fs::path(folder) / name).string());
  return out;
}

}  // namespace detail

// Lists `split_dir` (e.g. DIR/train). With `classes` (train's), every class folder must be
// one of them (a validation class the model was never trained on is an error); without,
// the split's own sorted subfolders are the classes. Throws io_error / format_error naming
// the folder: missing, no class folders, an empty class folder.
inline image_folder_index index_image_folder(const std::string& split_dir,
                                             const std::vector<std::string>* classes = nullptr) {
  namespace fs = std::filesystem;
  using sparsimix::detail::concat;
  std::error_code ec;
  if (!fs::is_directory(split_dir, ec))
    throw io_error(concat("image folder: '", split_dir, "' is missing or not a folder (expected <class>/ subfolders of images)"));
  std::vector<std::string> found;
  for (const auto& e : fs::directory_iterator(split_dir))
    if (e.is_directory()) found.push_back(e.path().filename().string());
  std::sort(found.begin(), found.end());
  if (found.empty())
    throw format_error(concat("image folder: '", split_dir, "' has no class subfolders (expected ", split_dir,
                              "/<class>/<image>.jpg)"));
  image_folder_index idx;
  idx.classes = classes ? *classes : found;
  std::map<std::string, std::int64_t> label_of;
  for (std::size_t i = 0; i < idx.classes.size(); ++i) label_of[idx.classes[i]] = static_cast<std::int64_t>(i);
  for (const auto& name : found) {
    const auto it = label_of.find(name);
    if (it == label_of.end())
      throw format_error(concat("image folder: class '", name, "' of '", split_dir,
                                "' is not a class of the training folder (classes come from train/: ",
                                idx.classes.size(), " of them)"));
    const auto files = detail::image_files_under(fs::path(split_dir) / name);
    if (files.empty())
      throw format_error(concat("image folder: class folder '", (fs::path(split_dir) / name).string(),
                                "' has no .jpg, .jpeg or .png files"));
    for (const auto& f : files) {
      idx.files.push_back(f);
      idx.labels.push_back(it->second);
    }
  }
  return idx;
}

// Decodes and preprocesses one file of an image folder per example.
class image_folder_source final : public image_source {
 public:
  // The files of `idx`, preprocessed by `pre` (checked here).
  image_folder_source(image_folder_index idx, preprocess_options pre) : idx_(std::move(idx)), pre_(std::move(pre)) {
    pre_.check();
  }
  index_t size() const override { return static_cast<index_t>(idx_.files.size()); }
  Shape image_shape() const override { return Shape{pre_.channels, pre_.img_size, pre_.img_size}; }
  void load(index_t i, float* dst, Rng* augment) const override {
    const auto img = convert_channels(decode_image_file(idx_.files[static_cast<std::size_t>(i)]), pre_.channels);
    if (augment)
      preprocess_train(img, pre_, *augment, dst);
    else
      preprocess_eval(img, pre_, dst);
  }
  std::string describe(index_t i) const override { return idx_.files[static_cast<std::size_t>(i)]; }
  // The class names (label = position).
  const std::vector<std::string>& classes() const noexcept { return idx_.classes; }

 private:
  image_folder_index idx_;
  preprocess_options pre_;
};

// The split `split_dir` as a streamed dataset (see index_image_folder for `classes`).
inline image_dataset load_image_folder_split(const std::string& split_dir, const preprocess_options& pre,
                                             const std::vector<std::string>* classes = nullptr) {
  auto idx = index_image_folder(split_dir, classes);
  Tensor<std::int64_t> labels(Shape{static_cast<index_t>(idx.labels.size())});
  std::copy(idx.labels.begin(), idx.labels.end(), labels.data());
  return image_dataset(std::make_shared<image_folder_source>(std::move(idx), pre), std::move(labels));
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::data

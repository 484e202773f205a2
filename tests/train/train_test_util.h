// What the trainer tests share: a small synthetic vgg11 run and a fresh output directory.
#pragma once

#include <filesystem>
#include <string>

#include "neuroflux/config/config.h"

namespace neuroflux::test {

inline Config synthetic_config(const std::string& method) {
  Config c;
  c.method = method;
  c.seed = 11;
  c.threads = 1;
  c.data.name = "synthetic";
  c.data.image_size = 16;
  c.data.channels = 3;
  c.data.num_classes = 4;
  c.data.train_size = 768;
  c.data.test_size = 256;
  c.data.val_fraction = 0.25;
  c.model.name = "vgg11";
  c.model.width = 0.125;
  c.train.epochs = 2;
  c.train.batch_size = 32;
  c.train.max_batch_size = 128;
  c.neuroflux.block_patience = 2;
  return c;
}

inline std::string fresh_dir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("neuroflux-nf-" + name);
  std::filesystem::remove_all(dir);
  return dir.string();
}

}  // namespace neuroflux::test

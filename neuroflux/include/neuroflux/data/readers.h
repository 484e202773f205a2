// Readers for the on-disk formats. Every failure is a neuroflux::DataError naming the file, what
// was expected and the byte offset where the file broke.
#pragma once

#include <string>

#include "neuroflux/data/image_set.h"

namespace neuroflux::data {

/// An IDX image file (magic 0x00000803, uint8 [N, H, W]) and its label file (0x00000801, uint8
/// [N]), each plain or gzip'd (detected by content, not name). Pixels become float32 in [0, 1].
ImageSet read_idx(const std::string& images_path, const std::string& labels_path);

/// Fashion-MNIST (or MNIST) from `root`: {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz].
/// Default root for Fashion-MNIST: /usr/share/datasets/fashion-mnist.
ImageSet read_mnist_like(const std::string& root, bool train);

/// CIFAR binary format. CIFAR-10: data_batch_{1..5}.bin / test_batch.bin, records of
/// 1 label byte + 3072 pixel bytes. CIFAR-100: train.bin / test.bin, records of coarse label,
/// fine label, 3072 pixels (the fine label is used). `root` may hold the files directly or in
/// cifar-10-batches-bin / cifar-100-binary.
ImageSet read_cifar(const std::string& root, int num_classes, bool train);

}  // namespace neuroflux::data

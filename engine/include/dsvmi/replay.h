// Replay: applies captured frames, in order, to a raw disk image, so that a
// copy of the image the guest started from becomes the image it ended with
// (`dsvmi replay`; the fidelity tests compare the two with sha256).
//
// Frames are untrusted (they come from a ring a guest-controlled QEMU wrote):
// each one is checked with the FlatBuffers Verifier and for meaning (known
// kind, payload length == length, range inside the image) before anything is
// written; the first bad frame stops the replay with an error naming it.
//
// Discards: the guest may read anything from a discarded range, so replay
// must pick what the live disk did. The dsvmi filter passes discards to a
// child opened with discard=unmap; on a raw file QEMU punches a hole
// (fallocate PUNCH_HOLE), which reads back as zeroes. Replay does the same by
// default (kPunchHole, falling back to writing zeroes where holes are not
// supported), which makes replayed and live images byte-identical. Images
// whose format keeps discarded data (e.g. qcow2 ignoring a discard smaller
// than a cluster) are not byte-comparable after discards; see docs/testing.md.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "dsvmi/status.h"

namespace dsvmi {

struct ReplayOptions {
  enum class Discard { kPunchHole, kZero, kSkip };
  Discard discard = Discard::kPunchHole;
};

struct ReplayStats {
  uint64_t frames = 0;
  uint64_t writes = 0, write_bytes = 0;
  uint64_t write_zeroes = 0, write_zeroes_bytes = 0;
  uint64_t discards = 0, discard_bytes = 0;
  uint64_t flushes = 0;
  // Lost frames the producer recorded (kind Lost) and their totals.
  uint64_t lost_records = 0, lost_frames = 0, lost_bytes = 0;
  // Sequence numbers missing without a Lost frame explaining them.
  uint64_t unexplained_gaps = 0, unexplained_missing = 0;
  bool lossless() const { return lost_records == 0 && unexplained_gaps == 0; }
};

// Reports a loss as a one-line human message (replay prints them loudly).
using LossReporter = void (*)(const std::string& message, void* context);

class ImageReplayer {
 public:
  // Opens a raw image for writing. nullptr + *error on failure.
  static std::unique_ptr<ImageReplayer> open(const std::string& image_path,
                                             const ReplayOptions& options, Status* error);
  ~ImageReplayer();
  ImageReplayer(const ImageReplayer&) = delete;
  ImageReplayer& operator=(const ImageReplayer&) = delete;

  void set_loss_reporter(LossReporter fn, void* context) {
    loss_fn_ = fn;
    loss_ctx_ = context;
  }

  // Verifies one frame and applies it.
  Status apply(std::span<const std::byte> frame);
  // fsync()s the image.
  Status finish();

  const ReplayStats& stats() const { return stats_; }
  uint64_t image_size() const { return size_; }

 private:
  ImageReplayer() = default;
  Status write_zeroes(uint64_t offset, uint64_t length, bool punch_hole);
  void report_loss(const std::string& message);

  int fd_ = -1;
  uint64_t size_ = 0;
  ReplayOptions options_;
  ReplayStats stats_;
  bool have_seq_ = false;
  uint64_t next_seq_ = 0;
  LossReporter loss_fn_ = nullptr;
  void* loss_ctx_ = nullptr;
};

}  // namespace dsvmi

// ModelDriver: the file-system-neutral half of a live driver (fs_driver.h)
// that keeps the shared model (FsState) and diffs it at consistency points.
// A driver derives from it and does what depends on its on-disk format:
// classifying written blocks, deciding when a batch is consistent, decoding
// what changed into Changes, and block ownership (some file systems own
// blocks beyond file extents, e.g. ext4's extent-tree nodes). The base does
// the rest, in the same way for every file system: which files are watched
// and hashed, the name events (ChangePlan), attribute events, reading back
// data the engine did not see, the gate's upkeep and modify events.
// docs/architecture.md ("The file-system boundary") shows the split.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "block_view.h"
#include "content_hashes.h"
#include "dsvmi/reverse_map.h"
#include "engine_context.h"
#include "event_out.h"
#include "fs_driver.h"
#include "fs_state.h"

namespace dsvmi::infer {

class ModelDriver : public FsDriver, public FileContent {
 public:
  uint64_t first_byte() const override { return info_.partition_offset; }
  uint64_t end_byte() const override { return info_.partition_offset + info_.partition_size; }
  void dump_state(std::vector<std::string>* lines) override { dump_tree(state_, partition_, lines); }
  // Policy change (ctx.options.policy already holds the new one): the new
  // globs, the watched cache dropped.
  void set_globs(std::vector<Glob> globs) override;

  // FileContent (content_hashes.h): a watched regular file one of whose
  // paths matches a hash glob; its bytes read through the view (shadow
  // images over the disk), holes and unwritten extents as zeroes.
  bool hashed_file(uint64_t ino, uint64_t* size, std::string* path) override;
  Status read_file(uint64_t ino, uint64_t offset, std::span<uint8_t> out) override;

 protected:
  // block_size: the view's block (ext4's block, FAT's sector).
  ModelDriver(EngineContext& ctx, const FsIndex& index, DiskReader& disk, uint32_t partition, uint32_t block_size);

  // The old and new state of one file at a consistency point. reused: the
  // id now names another file (freed and taken again within the batch).
  struct Change {
    std::optional<Inode> old;
    const Inode* now = nullptr;
    bool reused = false;
  };
  using Changes = std::map<uint64_t, Change>;
  using Entries = std::unordered_map<uint64_t, std::vector<DirEntry>>;

  // Compiles the policy's globs and the hash globs (for init()).
  Status compile_globs();
  // Whether the gate passes and events carry the data of file `ino`.
  bool watched(uint64_t ino);
  std::string name_path(uint64_t dir, const std::string& name);
  Event base_event(const FrameView& f, EventKind kind, uint64_t ino);
  // A modify event for a watched file's bytes (nothing for others).
  void emit_modify(const FrameView& f, uint64_t ino, uint64_t file_offset, const uint8_t* data, uint64_t len);
  // Hash events for the files this consistency point changed.
  void settle_hashes(const FrameView& f);
  // Sets (pass) or clears the gate over fs blocks [first, first + count);
  // clearing rounds inward so a neighbour sharing a grain keeps passing.
  void gate_blocks(uint64_t first, uint64_t count, bool pass);
  // Publishes the gate if a consistency point changed it.
  void publish_gate();
  // Drops the oldest pending data while the store is over its budget.
  void bound_pending();

  // A consistency point's shared steps, in this order:
  //   note_change() for each file whose state differs, as it is found;
  //   apply_names(): new attributes into the model, name events, renamed
  //     files followed in the gate (and read back if a rename made them
  //     watched);
  //   emit_attribute_events();
  //   (the driver's block ownership: releases, then new owners)
  //   read_back_new_data() for the files whose blocks changed;
  //   free_deleted(), then the driver's pending data, settle_hashes() and
  //   publish_gate().
  // Adds c to changes, telling the hasher what it means for the file.
  void note_change(uint64_t id, Change&& c, Changes* changes);
  // now_entries: the decoded directories' entries (moved from).
  void apply_names(const FrameView& f, Changes& changes, Entries& now_entries);
  void emit_attribute_events(const FrameView& f, const Changes& changes);
  // Low-overhead mode (or a pending store that evicted): a watched file's
  // data in blocks new to it was written while the gate did not pass them,
  // so QEMU dropped it; read it back from the live disk.
  void read_back_new_data(const FrameView& f, const std::vector<uint64_t>& reassigned, const Changes& changes);
  void free_deleted(const Changes& changes);

  // The live disk's current image of fs block b of a file (block_size
  // bytes), for read-backs.
  virtual Status read_back_block(uint64_t b, uint8_t* out) = 0;
  // Whether read_file can read this file's bytes from its extents.
  virtual Status readable(const Inode& n) { return Status::ok(); }

  // Releases the held modify when a public entry point returns, so no event
  // waits past the frame that produced it.
  struct ReleaseHeldOnReturn {
    ModelDriver* driver;
    ~ReleaseHeldOnReturn() { driver->out_.release_held(); }
  };

  EngineContext& ctx_;
  FilesystemInfo info_;
  uint32_t partition_;
  BlockView view_;
  ReverseMap rmap_;
  FsState state_;
  std::vector<Glob> globs_, hash_globs_;
  std::unordered_map<uint64_t, bool> watched_cache_;
  bool gate_dirty_ = false;
  EventOut out_;
  ContentHashes hashes_;

 private:
  void read_back(const FrameView& f, uint64_t id, const Inode& n, uint64_t logical, uint64_t physical);
  std::vector<uint8_t> block_;  // read-back buffer
};

}  // namespace dsvmi::infer

// ChangePlan: the name changes of one consistency point, ordered into events
// that can be applied one after the other. File-system neutral: it sees the
// old and new state of the changed inodes and directories in the neutral
// model (dsvmi/fs_model.h) and the engine's tree through NameTree. The rules
// it implements are stated in docs/events.md ("Ordering within a
// consistency point") and explained in docs/inference.md.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "dsvmi/events.h"
#include "dsvmi/fs_model.h"

namespace dsvmi::infer {

// The engine's tree of names, as far as ordering needs it. The plan reads
// and changes it one operation at a time, so a path is always the path at
// the moment its event applies.
class NameTree {
 public:
  virtual ~NameTree() = default;
  virtual uint64_t root() const = 0;
  // The entry `name` of directory `dir`, or nullptr.
  virtual const DirEntry* find(uint64_t dir, const std::string& name) = 0;
  // Whether directory `dir` has any entry (besides "." and "..").
  virtual bool has_entries(uint64_t dir) = 0;
  virtual void add_entry(uint64_t dir, const DirEntry& entry) = 0;
  virtual void remove_entry(uint64_t dir, const std::string& name) = 0;
  // Absolute path through the first name of each ancestor; false if `ino`
  // is not reachable from the root.
  virtual bool path(uint64_t ino, std::string* out) = 0;
  // The directory holding the first name of `ino`; false if it has none.
  virtual bool parent(uint64_t ino, uint64_t* dir) = 0;
};

// One name-level event, with its paths as they are when it applies.
struct NameEvent {
  EventKind kind = EventKind::Create;
  uint64_t ino = 0;
  std::string path;
  std::string old_path;       // Rename
  uint64_t replaced_ino = 0;  // Rename: the inode whose name at `path` was removed to make room
  bool old_incarnation = false;  // the event is about the inode as it was (attrs: the old ones)
};

// One inode of the batch: what the tree had (old), what the disk has now.
struct InodeChange {
  std::optional<Inode> old;  // nullopt: was free
  std::optional<Inode> now;  // nullopt: is free now
  // old and now are two different files that share the inode number (the
  // generation or the type changed: freed and allocated again). The caller
  // decides; see docs/events.md.
  bool new_incarnation = false;
  std::map<std::string, DirEntry> old_entries;  // old is a directory: its names
  std::vector<DirEntry> now_entries;            // now is a directory: its names
};

class ChangePlan {
 public:
  // Precondition: every inode is added before build(); `tree` still holds
  // the old names.
  void add(uint64_t ino, InodeChange change);
  // Diffs the names and derives the operations. Reads nothing of the tree.
  void build();
  // Inodes that gain or lose a name (valid after build()).
  const std::set<uint64_t>& renamed_inodes() const { return touched_; }
  // Applies every operation to `tree` in an order where each is valid,
  // appending one event per operation to `out`. Always terminates: when no
  // valid order exists (a hostile or inconsistent batch) an operation is
  // applied as is and counted in forced().
  void apply(NameTree& tree, std::vector<NameEvent>* out);

  uint64_t forced() const { return forced_; }
  uint64_t temporary_names() const { return temporary_names_; }

  // Prefix of the temporary names in the root directory that break cycles.
  static constexpr const char* kTemporaryPrefix = ".dsvmi-tmp-";

 private:
  struct Op {
    enum Type {
      RemoveOld,  // a name of an inode as it was (freed, or its number reused)
      Unlink,     // a name of a surviving inode that went
      Rename,     // a surviving inode's name moved (from_dir/from_name -> dir/name)
      Add,        // a new file's name (its first is the creation) or another link
    };
    Op(Type t, uint64_t i, FileType ft, uint64_t d, std::string n)
        : type(t), ino(i), ftype(ft), dir(d), name(std::move(n)) {}
    Type type;
    uint64_t ino;
    FileType ftype;
    uint64_t dir;
    std::string name;
    uint64_t from_dir = 0;
    std::string from_name;
    bool parked = false;  // Rename whose source was moved to a temporary name
    bool done = false;
  };
  bool fresh(uint64_t ino) const;  // a new file: allocated, or a new incarnation
  bool applicable(NameTree& tree, const Op& op);
  bool destination_ready(NameTree& tree, uint64_t dir);
  void apply_op(NameTree& tree, Op& op, std::vector<NameEvent>* out);
  bool park(NameTree& tree, std::vector<NameEvent>* out);

  std::map<uint64_t, InodeChange> inodes_;
  std::vector<Op> ops_;
  std::set<uint64_t> touched_;
  std::map<uint64_t, size_t> old_names_left_;  // names of an old incarnation not yet removed
  std::set<uint64_t> created_;                 // fresh inodes that got their first name
  std::map<std::pair<uint64_t, std::string>, uint64_t> removed_at_;  // name -> inode removed from it
  uint64_t forced_ = 0;
  uint64_t temporary_names_ = 0;
};

}  // namespace dsvmi::infer

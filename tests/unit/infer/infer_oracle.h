// Test support for inference tests: images changed by debugfs (and journal
// transactions written by debugfs, replayed by e2fsck), turned into frame
// streams by block diffs; debugfs's view of an image as the oracle tree; a
// reference replay of JSON events onto a tree.
#pragma once

#include "../common/shell.h"
#include "../common/temp_dir.h"

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <memory>

#include "dsvmi/crawl.h"
#include "dsvmi/disk_reader.h"
#include "dsvmi/events.h"
#include "dsvmi/index.h"
#include "dsvmi/frame_generated.h"

namespace dsvmi::testing {

using shell::quote;
using shell::run;

inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline void write_file(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
}


// Crawls `image` into an index at `index_path` and opens it (the engine's
// starting point in these tests).
inline std::unique_ptr<Index> crawl(const std::string& image, const std::string& index_path) {
  Status s;
  auto reader = open_disk(image, {}, &s);
  EXPECT_TRUE(reader) << s.message();
  if (!reader) return nullptr;
  CrawlOptions opt;
  opt.index_path = index_path;
  CrawlSummary sum;
  s = crawl_disk(*reader, opt, &sum);
  EXPECT_TRUE(s) << s.message();
  auto idx = Index::open(index_path, &s);
  EXPECT_TRUE(idx) << s.message();
  return idx;
}

// Runs a debugfs -w script on `image` (the script file goes to `dir`).
inline void debugfs_w(const std::string& image, const std::string& script, const std::string& dir) {
  write_file(dir + "/script.cmds", script);
  int rc = 0;
  std::string out = run("debugfs -w -f " + quote(dir + "/script.cmds") + " " + quote(image) + " 2>&1", &rc);
  ASSERT_EQ(rc, 0) << out;
}

// A frame in 8-byte aligned storage.
struct Frame {
  std::vector<uint64_t> storage;
  size_t size = 0;
  std::span<const std::byte> bytes() const { return {reinterpret_cast<const std::byte*>(storage.data()), size}; }
};

inline Frame make_frame(uint64_t seq, fb::FrameKind kind, uint64_t offset, uint64_t length,
                        const uint8_t* payload = nullptr, uint64_t time_ns = 0, uint64_t lost_frames = 0,
                        uint64_t first_lost_seq = 0) {
  flatbuffers::FlatBufferBuilder fbb(256 + (payload ? length : 0));
  flatbuffers::Offset<flatbuffers::Vector<uint8_t>> p = 0;
  if (payload) p = fbb.CreateVector(payload, length);
  auto f = fb::CreateFrame(fbb, seq, kind, offset, length, time_ns, p, lost_frames,
                           lost_frames ? length : 0, first_lost_seq);
  fb::FinishFrameBuffer(fbb, f);
  Frame out;
  out.size = fbb.GetSize();
  out.storage.resize((out.size + 7) / 8);
  std::memcpy(out.storage.data(), fbb.GetBufferPointer(), out.size);
  return out;
}

// Builds frame streams with increasing seq and timestamps.
class FrameStream {
 public:
  void write(uint64_t offset, const std::string& bytes) {
    frames.push_back(make_frame(seq_++, fb::FrameKind::Write, offset, bytes.size(),
                                reinterpret_cast<const uint8_t*>(bytes.data()), tick()));
  }
  void flush() { frames.push_back(make_frame(seq_++, fb::FrameKind::Flush, 0, 0, nullptr, tick())); }
  void lost(uint64_t offset, uint64_t length, uint64_t count) {
    frames.push_back(make_frame(seq_ + count - 1, fb::FrameKind::Lost, offset, length, nullptr, tick(), count, seq_));
    seq_ += count;
  }
  void skip(uint64_t count) { seq_ += count; }
  // No frame for `ns` (the next frame's timestamp is that much later).
  void pause(uint64_t ns) { time_ += ns; }
  // Write frames for every block that differs between two images, merging
  // runs of changed blocks up to 64 KiB (as a guest's bios would).
  void diff(const std::string& before, const std::string& after, uint32_t bs, const std::set<uint64_t>* only = nullptr,
            const std::set<uint64_t>* except = nullptr) {
    const std::string a = read_file(before), b = read_file(after);
    const uint64_t n = std::min(a.size(), b.size()) / bs;
    uint64_t run_start = 0, run_len = 0;
    auto emit = [&] {
      if (run_len) write(run_start * bs, b.substr(run_start * bs, run_len * bs));
      run_len = 0;
    };
    for (uint64_t i = 0; i < n; i++) {
      bool changed = std::memcmp(a.data() + i * bs, b.data() + i * bs, bs) != 0;
      if (changed && only && !only->count(i)) changed = false;
      if (changed && except && except->count(i)) changed = false;
      if (!changed) {
        emit();
        continue;
      }
      if (run_len && (run_start + run_len != i || run_len * bs >= 65536)) emit();
      if (!run_len) run_start = i;
      run_len++;
    }
    emit();
  }
  static std::set<uint64_t> changed_blocks(const std::string& before, const std::string& after, uint32_t bs) {
    const std::string a = read_file(before), b = read_file(after);
    std::set<uint64_t> out;
    for (uint64_t i = 0; i < std::min(a.size(), b.size()) / bs; i++) {
      if (std::memcmp(a.data() + i * bs, b.data() + i * bs, bs) != 0) out.insert(i);
    }
    return out;
  }
  std::vector<Frame> frames;

 private:
  uint64_t tick() { return time_ += 1000000; }  // 1 ms per frame
  uint64_t seq_ = 1, time_ = 1000000000;
};

// What debugfs says about one path.
struct OracleEntry {
  uint64_t ino = 0;
  std::string type;  // file dir symlink other
  uint32_t mode = 0, uid = 0, gid = 0;
  uint64_t size = 0;
  uint32_t links = 0;
  int64_t mtime_ns = 0;
  std::string target;
  bool operator==(const OracleEntry&) const = default;
};
using Tree = std::map<std::string, OracleEntry>;

inline std::string type_of_mode(uint32_t m) {
  switch (m & 0170000) {
    case 0100000: return "file";
    case 0040000: return "dir";
    case 0120000: return "symlink";
    default: return "other";
  }
}

// debugfs's view: every path (recursive `ls -p`), and per inode `stat` for
// link count and mtime, `cat` for symlink targets.
inline Tree debugfs_tree(const std::string& image, bool details = true) {
  Tree tree;
  std::vector<std::pair<std::string, uint64_t>> dirs{{"/", 2}};
  { OracleEntry root; root.ino = 2; root.type = "dir"; tree["/"] = root; }
  for (size_t q = 0; q < dirs.size(); q++) {
    auto [path, ino] = dirs[q];
    std::string out = run("debugfs -R " + quote("ls -p <" + std::to_string(ino) + ">") + " " + quote(image) + " 2>/dev/null");
    std::istringstream in(out);
    std::string line;
    while (std::getline(in, line)) {
      // /ino/mode/uid/gid/name/size/
      if (line.size() < 2 || line[0] != '/') continue;
      std::vector<std::string> f;
      size_t pos = 1;
      for (int k = 0; k < 4; k++) {
        size_t e = line.find('/', pos);
        if (e == std::string::npos) break;
        f.push_back(line.substr(pos, e - pos));
        pos = e + 1;
      }
      size_t last = line.rfind('/', line.size() - 2);
      if (f.size() < 4 || last == std::string::npos || last < pos) continue;
      std::string name = line.substr(pos, last - pos);
      std::string size = line.substr(last + 1, line.size() - last - 2);
      if (name == "." || name == ".." || f[0] == "0") continue;
      OracleEntry e;
      e.ino = std::stoull(f[0]);
      uint32_t mode = static_cast<uint32_t>(std::stoul(f[1], nullptr, 8));
      e.type = type_of_mode(mode);
      e.mode = mode & 07777;
      e.uid = static_cast<uint32_t>(std::stoul(f[2]));
      e.gid = static_cast<uint32_t>(std::stoul(f[3]));
      e.size = size.empty() ? 0 : std::stoull(size);
      std::string child = path == "/" ? "/" + name : path + "/" + name;
      tree[child] = e;
      if (e.type == "dir") dirs.push_back({child, e.ino});
    }
  }
  if (!details) return tree;
  // One debugfs run for all stats.
  std::string script;
  std::set<uint64_t> inos;
  for (auto& [p, e] : tree) inos.insert(e.ino);
  for (uint64_t ino : inos) script += "stat <" + std::to_string(ino) + ">\n";
  const std::string script_path = image + ".stat.cmds";
  write_file(script_path, script);
  std::string out = run("debugfs -f " + quote(script_path) + " " + quote(image) + " 2>/dev/null");
  std::map<uint64_t, std::pair<uint32_t, int64_t>> info;  // ino -> links, mtime
  std::map<uint64_t, uint64_t> sizes;
  std::map<uint64_t, std::string> fast_links;
  uint32_t root_mode = 0, root_uid = 0, root_gid = 0;
  uint64_t root_size = 0;
  size_t pos = 0;
  while ((pos = out.find("Inode: ", pos)) != std::string::npos) {
    uint64_t ino = std::stoull(out.substr(pos + 7));
    size_t next = out.find("Inode: ", pos + 7);
    std::string block = out.substr(pos, next == std::string::npos ? std::string::npos : next - pos);
    pos += 7;
    uint32_t links = 0;
    int64_t mtime = 0;
    size_t l = block.find("Links: ");
    if (l != std::string::npos) links = static_cast<uint32_t>(std::stoul(block.substr(l + 7)));
    size_t m = block.find(" mtime: 0x");
    if (m != std::string::npos) {
      uint32_t sec = static_cast<uint32_t>(std::stoul(block.substr(m + 10, 8), nullptr, 16));
      uint32_t extra = 0;
      if (block[m + 18] == ':') extra = static_cast<uint32_t>(std::stoul(block.substr(m + 19, 8), nullptr, 16));
      int64_t s = static_cast<int32_t>(sec) + (static_cast<int64_t>(extra & 3) << 32);
      mtime = s * 1000000000 + (extra >> 2);
    }
    info[ino] = {links, mtime};
    size_t szp = block.find("Size: ");
    if (szp != std::string::npos) sizes[ino] = std::stoull(block.substr(szp + 6));
    size_t fl = block.find("Fast link dest: \"");
    if (fl != std::string::npos) {
      size_t end = block.rfind('"');
      fast_links[ino] = block.substr(fl + 17, end - (fl + 17));
    }
    if (ino == 2) {
      // The root has no ls -p line of its own.
      size_t md = block.find("Mode:"), us = block.find("User:"), gr = block.find("Group:"), sz = block.find("Size: ");
      if (md != std::string::npos) root_mode = static_cast<uint32_t>(std::stoul(block.substr(md + 5), nullptr, 8));
      if (us != std::string::npos) root_uid = static_cast<uint32_t>(std::stoul(block.substr(us + 5)));
      if (gr != std::string::npos) root_gid = static_cast<uint32_t>(std::stoul(block.substr(gr + 6)));
      if (sz != std::string::npos) root_size = std::stoull(block.substr(sz + 6));
    }
  }
  for (auto& [p, e] : tree) {
    e.links = info[e.ino].first;
    e.mtime_ns = info[e.ino].second;
    if (e.type == "dir") e.size = sizes[e.ino];
    if (e.type == "symlink" && fast_links.count(e.ino)) {
      e.target = fast_links[e.ino];
    } else if (e.type == "symlink") {
      e.target = run("debugfs -R " + quote("cat <" + std::to_string(e.ino) + ">") + " " + quote(image) + " 2>/dev/null");
      e.target = e.target.substr(0, e.size);
    }
  }
  tree["/"].mode = root_mode;
  tree["/"].uid = root_uid;
  tree["/"].gid = root_gid;
  tree["/"].size = root_size;
  tree["/"].links = info[2].first;
  tree["/"].mtime_ns = info[2].second;
  return tree;
}

// --- minimal JSON field access for the engine's own output -------------------
inline bool json_field(const std::string& obj, const std::string& key, std::string* raw) {
  // Finds "key": at the top level of a flat-enough object and returns the raw
  // value text (string values unescaped for \" \\ and \u00XX).
  std::string k = "\"" + key + "\":";
  size_t depth = 0;
  bool in_str = false;
  for (size_t i = 0; i < obj.size(); i++) {
    char c = obj[i];
    if (in_str) {
      if (c == '\\') i++;
      else if (c == '"') in_str = false;
      continue;
    }
    if (c == '{') depth++;
    if (c == '}') depth--;
    if (c == '"') {
      if (depth == 1 && obj.compare(i, k.size(), k) == 0) {
        size_t v = i + k.size();
        if (obj[v] == '"') {
          std::string s;
          for (size_t j = v + 1; j < obj.size() && obj[j] != '"'; j++) {
            if (obj[j] == '\\') {
              j++;
              if (obj[j] == 'u') {
                s.push_back(static_cast<char>(std::stoul(obj.substr(j + 1, 4), nullptr, 16)));
                j += 4;
              } else {
                s.push_back(obj[j]);
              }
            } else {
              s.push_back(obj[j]);
            }
          }
          *raw = s;
        } else if (obj[v] == '{') {
          int d = 0;
          size_t j = v;
          for (; j < obj.size(); j++) {
            if (obj[j] == '{') d++;
            if (obj[j] == '}' && --d == 0) break;
          }
          *raw = obj.substr(v, j - v + 1);
        } else {
          size_t j = v;
          while (j < obj.size() && obj[j] != ',' && obj[j] != '}') j++;
          *raw = obj.substr(v, j - v);
        }
        return true;
      }
      in_str = true;
    }
  }
  return false;
}
inline uint64_t json_u64(const std::string& obj, const std::string& key) {
  std::string v;
  return json_field(obj, key, &v) ? std::stoull(v) : 0;
}
inline std::string json_str(const std::string& obj, const std::string& key) {
  std::string v;
  json_field(obj, key, &v);
  return v;
}

// The engine's --state / dump_state output as a Tree.
inline Tree tree_from_state(const std::string& state) {
  Tree t;
  std::istringstream in(state);
  std::string line;
  while (std::getline(in, line)) {
    OracleEntry e;
    e.ino = json_u64(line, "ino");
    e.type = json_str(line, "type");
    if (e.type != "file" && e.type != "dir" && e.type != "symlink") e.type = "other";
    e.mode = static_cast<uint32_t>(json_u64(line, "mode"));
    e.uid = static_cast<uint32_t>(json_u64(line, "uid"));
    e.gid = static_cast<uint32_t>(json_u64(line, "gid"));
    e.size = json_u64(line, "size");
    e.links = static_cast<uint32_t>(json_u64(line, "links"));
    std::string mt;
    if (json_field(line, "mtime_ns", &mt)) e.mtime_ns = std::stoll(mt);
    e.target = json_str(line, "target");
    t[json_str(line, "path")] = e;
  }
  return t;
}

// What events carry: no link counts, times or directory sizes.
inline OracleEntry strip_for_events(OracleEntry e) {
  e.links = 0;
  e.mtime_ns = 0;
  if (e.type == "dir") e.size = 0;
  return e;
}

// Reference replay of events onto a tree: paths, inode numbers, types,
// mode/uid/gid, sizes, symlink targets (not link counts or times).
inline std::string apply_events(Tree* tree, const std::vector<Event>& events) {
  auto strip = [](OracleEntry e) { return strip_for_events(e); };
  for (auto& [p, e] : *tree) e = strip(e);
  auto set_attrs = [&](OracleEntry* e, const Event& ev) {
    if (!ev.has_attrs) return;
    e->mode = ev.attrs.mode;
    e->uid = ev.attrs.uid;
    e->gid = ev.attrs.gid;
    e->size = e->type == "dir" ? 0 : ev.attrs.size;
    if (ev.attrs.type == FileType::Symlink) e->target = ev.attrs.symlink_target;
  };
  auto type_name = [](FileType t) -> std::string {
    return t == FileType::Regular ? "file" : t == FileType::Directory ? "dir" : t == FileType::Symlink ? "symlink" : "other";
  };
  for (const Event& ev : events) {
    const std::string& p = ev.path;
    switch (ev.kind) {
      case EventKind::Create:
      case EventKind::Mkdir:
      case EventKind::Symlink: {
        if (tree->count(p)) return "create over an existing path " + p;
        OracleEntry e;
        e.ino = ev.ino;
        e.type = type_name(ev.attrs.type);
        set_attrs(&e, ev);
        (*tree)[p] = e;
        break;
      }
      case EventKind::Link: {
        if (tree->count(p)) return "link over an existing path " + p;
        OracleEntry e;
        bool found = false;
        for (auto& [q, x] : *tree) {
          if (x.ino == ev.ino) {
            e = x;
            found = true;
          }
        }
        if (!found) return "link to an unknown inode at " + p;
        (*tree)[p] = e;
        for (auto& [q, x] : *tree) {
          if (x.ino == ev.ino) set_attrs(&x, ev);
        }
        break;
      }
      case EventKind::Unlink:
      case EventKind::Delete:
      case EventKind::Rmdir: {
        auto it = tree->find(p);
        if (it == tree->end()) return std::string(event_kind_name(ev.kind)) + " of a missing path " + p;
        if (ev.kind == EventKind::Rmdir) {
          auto next = std::next(it);
          if (next != tree->end() && next->first.rfind(p + "/", 0) == 0) return "rmdir of a non-empty " + p;
        }
        tree->erase(it);
        break;
      }
      case EventKind::Rename: {
        const std::string& o = ev.old_path;
        if (!tree->count(o)) return "rename of a missing path " + o;
        if (tree->count(p)) return "rename over an existing path " + p + " (no delete before it)";
        std::vector<std::pair<std::string, OracleEntry>> moved;
        for (auto it = tree->begin(); it != tree->end();) {
          if (it->first == o || it->first.rfind(o + "/", 0) == 0) {
            moved.push_back({p + it->first.substr(o.size()), it->second});
            it = tree->erase(it);
          } else {
            ++it;
          }
        }
        for (auto& [q, e] : moved) (*tree)[q] = e;
        break;
      }
      case EventKind::Attrib:
      case EventKind::Truncate:
      case EventKind::Extend: {
        bool found = false;
        for (auto& [q, x] : *tree) {
          if (x.ino == ev.ino) {
            set_attrs(&x, ev);
            found = true;
          }
        }
        if (!found) return std::string(event_kind_name(ev.kind)) + " of an unknown inode " + p;
        break;
      }
      default:
        break;
    }
  }
  return "";
}

}  // namespace dsvmi::testing

// ChangePlan against a reference model. A small simulated file system runs
// real operation sequences (with inode numbers reused lowest-first, as ext4
// hands them out, and a new generation per allocation); the plan gets only
// what a consistency point sees (old and new state of the changed inodes and
// directories) and its events, applied in order by an independent path-keyed
// model to the old tree, must give the new tree. Each event must also be
// valid when it applies (no create over a name, no rmdir of a non-empty
// directory, no second incarnation of a number while the first has a name).
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <cstdio>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "../../../engine/infer/change_plan.h"

namespace dsvmi::infer {
namespace {

constexpr uint64_t kRoot = 2;
constexpr uint64_t kFirstIno = 11;

// The simulated file system: what the guest does.
struct Sim {
  struct Node {
    FileType type = FileType::Regular;
    uint32_t generation = 0;
    std::map<std::string, uint64_t> entries;  // directories
    int links = 0;
  };
  std::map<uint64_t, Node> nodes;
  uint32_t generations = 1;

  Sim() { nodes[kRoot] = Node{FileType::Directory, 1, {}, 1}; }
  bool is_dir(uint64_t ino) const {
    auto it = nodes.find(ino);
    return it != nodes.end() && it->second.type == FileType::Directory;
  }
  uint64_t alloc(FileType t) {
    uint64_t ino = kFirstIno;
    while (nodes.count(ino)) ino++;
    nodes[ino] = Node{t, ++generations, {}, 0};
    return ino;
  }
  const uint64_t* lookup(uint64_t dir, const std::string& name) const {
    auto d = nodes.find(dir);
    if (d == nodes.end()) return nullptr;
    auto e = d->second.entries.find(name);
    return e == d->second.entries.end() ? nullptr : &e->second;
  }
  // dir == ancestor or below it.
  bool inside(uint64_t dir, uint64_t ancestor) const {
    for (int i = 0; i < 1000; i++) {
      if (dir == ancestor) return true;
      if (dir == kRoot) return false;
      uint64_t up = 0;
      for (const auto& [ino, n] : nodes) {
        for (const auto& [name, c] : n.entries) {
          if (c == dir && is_dir(c)) up = ino;
        }
      }
      if (up == 0) return false;
      dir = up;
    }
    return true;
  }
  bool make(uint64_t dir, const std::string& name, FileType t) {
    if (!is_dir(dir) || lookup(dir, name)) return false;
    uint64_t ino = alloc(t);
    nodes[ino].links = 1;
    nodes[dir].entries[name] = ino;
    return true;
  }
  bool link(uint64_t ino, uint64_t dir, const std::string& name) {
    if (!nodes.count(ino) || is_dir(ino) || !is_dir(dir) || lookup(dir, name)) return false;
    nodes[ino].links++;
    nodes[dir].entries[name] = ino;
    return true;
  }
  // unlink or rmdir
  bool remove(uint64_t dir, const std::string& name) {
    const uint64_t* p = lookup(dir, name);
    if (!p) return false;
    uint64_t ino = *p;
    if (is_dir(ino) && !nodes[ino].entries.empty()) return false;
    nodes[dir].entries.erase(name);
    if (--nodes[ino].links == 0) nodes.erase(ino);
    return true;
  }
  void remove_tree(uint64_t dir, const std::string& name) {
    const uint64_t* p = lookup(dir, name);
    if (!p) return;
    uint64_t ino = *p;
    if (is_dir(ino)) {
      std::vector<std::string> names;
      for (const auto& [n, c] : nodes[ino].entries) names.push_back(n);
      for (const std::string& n : names) remove_tree(ino, n);
    }
    remove(dir, name);
  }
  bool rename(uint64_t sdir, const std::string& sname, uint64_t ddir, const std::string& dname) {
    const uint64_t* p = lookup(sdir, sname);
    if (!p || !is_dir(ddir)) return false;
    uint64_t ino = *p;
    if (is_dir(ino) && inside(ddir, ino)) return false;
    if (const uint64_t* t = lookup(ddir, dname)) {
      if (*t == ino) return false;
      if (is_dir(*t) != is_dir(ino)) return false;
      if (!remove(ddir, dname)) return false;  // a non-empty directory stays
    }
    nodes[sdir].entries.erase(sname);
    nodes[ddir].entries[dname] = ino;
    return true;
  }
  // path -> (ino, type), through every name.
  std::map<std::string, std::pair<uint64_t, FileType>> paths() const {
    std::map<std::string, std::pair<uint64_t, FileType>> out;
    std::vector<std::pair<std::string, uint64_t>> todo{{"", kRoot}};
    while (!todo.empty()) {
      auto [p, ino] = todo.back();
      todo.pop_back();
      for (const auto& [name, c] : nodes.at(ino).entries) {
        std::string q = p + "/" + name;
        out[q] = {c, nodes.at(c).type};
        if (is_dir(c)) todo.push_back({q, c});
      }
    }
    return out;
  }
};

// The engine's tree as the plan changes it (the role FsState plays).
class MemTree : public NameTree {
 public:
  explicit MemTree(const Sim& s) {
    for (const auto& [ino, n] : s.nodes) {
      for (const auto& [name, c] : n.entries) add_entry(ino, DirEntry{c, s.nodes.at(c).type, name});
    }
  }
  uint64_t root() const override { return kRoot; }
  const DirEntry* find(uint64_t dir, const std::string& name) override {
    auto d = dirs_.find(dir);
    if (d == dirs_.end()) return nullptr;
    auto e = d->second.find(name);
    return e == d->second.end() ? nullptr : &e->second;
  }
  bool has_entries(uint64_t dir) override { return dirs_.count(dir) && !dirs_[dir].empty(); }
  void add_entry(uint64_t dir, const DirEntry& e) override {
    dirs_[dir][e.name] = e;
    links_[e.ino].push_back({dir, e.name});
  }
  void remove_entry(uint64_t dir, const std::string& name) override {
    auto it = dirs_[dir].find(name);
    if (it == dirs_[dir].end()) return;
    auto& l = links_[it->second.ino];
    for (size_t i = 0; i < l.size(); i++) {
      if (l[i].parent == dir && l[i].name == name) {
        l.erase(l.begin() + i);
        break;
      }
    }
    dirs_[dir].erase(it);
  }
  bool parent(uint64_t ino, uint64_t* dir) override {
    auto l = links_.find(ino);
    if (l == links_.end() || l->second.empty()) return false;
    *dir = l->second.front().parent;
    return true;
  }
  bool path(uint64_t ino, std::string* out) override {
    std::string p;
    for (int i = 0; i < 1000 && ino != kRoot; i++) {
      auto l = links_.find(ino);
      if (l == links_.end() || l->second.empty()) return false;
      p = "/" + l->second.front().name + p;
      ino = l->second.front().parent;
    }
    if (ino != kRoot) return false;
    *out = p.empty() ? "/" : p;
    return true;
  }

 private:
  std::map<uint64_t, std::map<std::string, DirEntry>> dirs_;
  struct Name {
    uint64_t parent;
    std::string name;
  };
  std::map<uint64_t, std::vector<Name>> links_;
};

// What one consistency point sees: every inode whose state changed, every
// directory whose names changed (a renamed file's own inode is not decoded).
ChangePlan plan_for(const Sim& before, const Sim& after) {
  ChangePlan plan;
  std::set<uint64_t> inos;
  for (const auto& [i, n] : before.nodes) inos.insert(i);
  for (const auto& [i, n] : after.nodes) inos.insert(i);
  for (uint64_t i : inos) {
    auto o = before.nodes.find(i);
    auto n = after.nodes.find(i);
    const bool had = o != before.nodes.end(), has = n != after.nodes.end();
    const bool other = had && has && (o->second.generation != n->second.generation || o->second.type != n->second.type);
    // A directory is decoded when its blocks change: a name now pointing
    // to another file at the same number rewrites its entry too.
    bool names = had && has && o->second.entries != n->second.entries;
    if (had && has) {
      for (const auto& [name, e] : n->second.entries) {
        auto was = before.nodes.find(e);
        names = names || was == before.nodes.end() || was->second.generation != after.nodes.at(e).generation;
      }
    }
    if (had == has && !other && !names) continue;
    InodeChange c;
    auto inode = [&](uint64_t ino, const Sim::Node& s) {
      Inode x;
      x.ino = ino;
      x.type = s.type;
      x.generation = s.generation;
      return x;
    };
    if (had) {
      c.old = inode(i, o->second);
      for (const auto& [name, e] : o->second.entries) c.old_entries[name] = DirEntry{e, before.nodes.at(e).type, name};
    }
    if (has) {
      c.now = inode(i, n->second);
      for (const auto& [name, e] : n->second.entries) c.now_entries.push_back(DirEntry{e, after.nodes.at(e).type, name});
    }
    c.new_incarnation = other;
    plan.add(i, std::move(c));
  }
  plan.build();
  return plan;
}

// The reference model: paths only, events applied literally. Returns "" or
// what went wrong.
std::string replay(std::map<std::string, std::pair<uint64_t, FileType>> t, const std::vector<NameEvent>& events,
                   const std::map<std::string, std::pair<uint64_t, FileType>>& want) {
  auto parent_of = [](const std::string& p) { return p.substr(0, p.rfind('/')); };
  auto parent_ok = [&](const std::string& p) {
    std::string d = parent_of(p);
    return d.empty() || (t.count(d) && t[d].second == FileType::Directory);
  };
  auto has_ino = [&](uint64_t ino) {
    for (const auto& [p, e] : t) {
      if (e.first == ino) return true;
    }
    return false;
  };
  auto below = [](const std::string& q, const std::string& p) { return q.size() > p.size() && q.compare(0, p.size() + 1, p + "/") == 0; };
  for (const NameEvent& ev : events) {
    const std::string& p = ev.path;
    const std::string what = std::string(event_kind_name(ev.kind)) + " " + std::to_string(ev.ino) + " " + p;
    switch (ev.kind) {
      case EventKind::Create:
      case EventKind::Mkdir:
      case EventKind::Symlink:
        if (t.count(p) || !parent_ok(p)) return "invalid " + what;
        if (has_ino(ev.ino)) return what + ": the number still has a name";
        t[p] = {ev.ino, ev.kind == EventKind::Mkdir     ? FileType::Directory
                        : ev.kind == EventKind::Symlink ? FileType::Symlink
                                                        : FileType::Regular};
        break;
      case EventKind::Link: {
        if (t.count(p) || !parent_ok(p) || !has_ino(ev.ino)) return "invalid " + what;
        FileType ft = FileType::Regular;
        for (const auto& [q, e] : t) {
          if (e.first == ev.ino) ft = e.second;
        }
        t[p] = {ev.ino, ft};
        break;
      }
      case EventKind::Unlink:
      case EventKind::Delete:
      case EventKind::Rmdir: {
        auto it = t.find(p);
        if (it == t.end() || it->second.first != ev.ino) return "invalid " + what;
        for (const auto& [q, e] : t) {
          if (below(q, p)) return what + ": not empty";
        }
        t.erase(it);
        if (ev.kind != EventKind::Unlink && has_ino(ev.ino)) return what + ": the inode still has a name";
        if (ev.kind == EventKind::Unlink && !has_ino(ev.ino) && ev.old_incarnation) return what + ": last name";
        break;
      }
      case EventKind::Rename: {
        const std::string& o = ev.old_path;
        auto it = t.find(o);
        if (it == t.end() || it->second.first != ev.ino || t.count(p) || !parent_ok(p) || below(p, o))
          return "invalid rename " + o + " -> " + p;
        std::map<std::string, std::pair<uint64_t, FileType>> moved;
        for (auto q = t.begin(); q != t.end();) {
          if (q->first == o || below(q->first, o)) {
            moved[p + q->first.substr(o.size())] = q->second;
            q = t.erase(q);
          } else {
            ++q;
          }
        }
        t.insert(moved.begin(), moved.end());
        break;
      }
      default:
        return "unexpected " + what;
    }
  }
  if (t != want) {
    std::string d;
    for (const auto& [p, e] : t) {
      if (!want.count(p) || want.at(p) != e) d += " extra " + p + "=" + std::to_string(e.first);
    }
    for (const auto& [p, e] : want) {
      if (!t.count(p) || t.at(p) != e) d += " missing " + p + "=" + std::to_string(e.first);
    }
    return "replayed tree differs:" + d;
  }
  return "";
}

std::string describe(const std::vector<NameEvent>& events) {
  std::string s;
  for (const NameEvent& e : events) {
    s += std::string("\n  ") + event_kind_name(e.kind) + " " + std::to_string(e.ino) + " " + e.path;
    if (e.kind == EventKind::Rename) s += " <- " + e.old_path;
  }
  return s;
}

// Plans before -> after, checks it, returns the events.
std::vector<NameEvent> check(const Sim& before, const Sim& after, uint64_t* temporary = nullptr) {
  ChangePlan plan = plan_for(before, after);
  MemTree tree(before);
  std::vector<NameEvent> events;
  plan.apply(tree, &events);
  EXPECT_EQ(plan.forced(), 0u) << describe(events);
  std::string err = replay(before.paths(), events, after.paths());
  EXPECT_EQ(err, "") << describe(events);
  if (plan.forced() != 0 || !err.empty()) {
    std::string t = "\nbefore:";
    for (const auto& [p, e] : before.paths()) t += " " + p + "=" + std::to_string(e.first);
    t += "\nafter:";
    for (const auto& [p, e] : after.paths()) t += " " + p + "=" + std::to_string(e.first);
    ADD_FAILURE() << t;
  }
  if (temporary) *temporary = plan.temporary_names();
  return events;
}

uint64_t dir_at(const Sim& s, const std::string& path) {
  auto p = s.paths();
  return path == "/" ? kRoot : p.at(path).first;
}

bool has_event(const std::vector<NameEvent>& ev, EventKind k, uint64_t ino, const std::string& path) {
  for (const NameEvent& e : ev) {
    if (e.kind == k && e.ino == ino && e.path == path) return true;
  }
  return false;
}

// The reported case: `rm -r /a/b/c` (c holds d/e/f/g and a hard link), then
// `mkdir /reuse` and a file in it, one commit; the numbers of c and d come
// straight back.
TEST(ChangePlan, FreedTreeNumbersReusedByNewDirectoryAndFile) {
  Sim s;
  s.make(kRoot, "a", FileType::Directory);
  s.make(dir_at(s, "/a"), "b", FileType::Directory);
  s.make(dir_at(s, "/a/b"), "c", FileType::Directory);
  uint64_t dir = dir_at(s, "/a/b/c");
  for (const char* n : {"d", "e", "f", "g"}) {
    s.make(dir, n, FileType::Directory);
    dir = *s.lookup(dir, n);
  }
  s.make(dir_at(s, "/a"), "hard1", FileType::Regular);
  s.link(*s.lookup(dir_at(s, "/a"), "hard1"), dir_at(s, "/a/b/c"), "hard2");
  const uint64_t c = dir_at(s, "/a/b/c"), d = dir_at(s, "/a/b/c/d");
  Sim before = s;
  s.remove_tree(dir_at(s, "/a/b"), "c");
  s.make(kRoot, "reuse", FileType::Directory);
  s.make(dir_at(s, "/reuse"), "r", FileType::Regular);
  ASSERT_EQ(dir_at(s, "/reuse"), c);
  ASSERT_EQ(*s.lookup(c, "r"), d);
  auto ev = check(before, s);
  EXPECT_TRUE(has_event(ev, EventKind::Mkdir, c, "/reuse")) << describe(ev);
  EXPECT_TRUE(has_event(ev, EventKind::Create, d, "/reuse/r")) << describe(ev);
  EXPECT_TRUE(has_event(ev, EventKind::Rmdir, c, "/a/b/c")) << describe(ev);
  EXPECT_TRUE(has_event(ev, EventKind::Rmdir, d, "/a/b/c/d")) << describe(ev);
}

TEST(ChangePlan, SwappedNamesGoThroughATemporaryName) {
  Sim s;
  s.make(kRoot, "a", FileType::Directory);
  s.make(kRoot, "b", FileType::Directory);
  s.make(kRoot, "t", FileType::Directory);
  s.make(dir_at(s, "/a"), "x", FileType::Regular);
  s.make(dir_at(s, "/b"), "y", FileType::Regular);
  Sim before = s;
  ASSERT_TRUE(s.rename(dir_at(s, "/a"), "x", dir_at(s, "/t"), "tmp"));
  ASSERT_TRUE(s.rename(dir_at(s, "/b"), "y", dir_at(s, "/a"), "x"));
  ASSERT_TRUE(s.rename(dir_at(s, "/t"), "tmp", dir_at(s, "/b"), "y"));
  uint64_t temporary = 0;
  check(before, s, &temporary);
  EXPECT_EQ(temporary, 1u);
}

TEST(ChangePlan, ThreeCycle) {
  Sim s;
  for (const char* n : {"p", "q", "r"}) s.make(kRoot, n, FileType::Regular);
  Sim before = s;
  s.rename(kRoot, "p", kRoot, "tmp");
  s.rename(kRoot, "q", kRoot, "p");
  s.rename(kRoot, "r", kRoot, "q");
  s.rename(kRoot, "tmp", kRoot, "r");
  check(before, s);
}

TEST(ChangePlan, ParentAndChildDirectoriesSwapPlaces) {
  Sim s;
  s.make(kRoot, "p", FileType::Directory);
  s.make(dir_at(s, "/p"), "q", FileType::Directory);
  s.make(dir_at(s, "/p/q"), "leaf", FileType::Regular);
  Sim before = s;
  s.rename(dir_at(s, "/p"), "q", kRoot, "t");
  s.rename(kRoot, "p", dir_at(s, "/t"), "q");
  s.rename(kRoot, "t", kRoot, "p");
  check(before, s);
}

TEST(ChangePlan, FileMovedFromFreedDirectoryIntoItsReusedNumber) {
  Sim s;
  s.make(kRoot, "old", FileType::Directory);
  s.make(dir_at(s, "/old"), "f", FileType::Regular);
  const uint64_t old = dir_at(s, "/old");
  Sim before = s;
  s.make(kRoot, "x", FileType::Directory);
  s.rename(old, "f", dir_at(s, "/x"), "f");
  s.remove(kRoot, "old");
  s.make(kRoot, "new", FileType::Directory);
  ASSERT_EQ(dir_at(s, "/new"), old);
  s.rename(dir_at(s, "/x"), "f", old, "f");
  s.remove(kRoot, "x");
  check(before, s);
}

TEST(ChangePlan, RenameOverExistingRemovesTheVictimFirst) {
  Sim s;
  s.make(kRoot, "src", FileType::Regular);
  s.make(kRoot, "victim", FileType::Regular);
  const uint64_t victim = *s.lookup(kRoot, "victim");
  Sim before = s;
  s.rename(kRoot, "src", kRoot, "victim");
  auto ev = check(before, s);
  ASSERT_EQ(ev.size(), 2u) << describe(ev);
  EXPECT_EQ(ev[0].kind, EventKind::Delete);
  EXPECT_EQ(ev[1].kind, EventKind::Rename);
  EXPECT_EQ(ev[1].replaced_ino, victim);
}

TEST(ChangePlan, DirectoryMovedUnderADirectoryThatIsThenRenamed) {
  Sim s;
  s.make(kRoot, "d", FileType::Directory);
  s.make(kRoot, "m", FileType::Directory);
  s.make(dir_at(s, "/m"), "leaf", FileType::Regular);
  Sim before = s;
  s.rename(kRoot, "m", dir_at(s, "/d"), "m");
  s.rename(kRoot, "d", kRoot, "d2");
  s.make(dir_at(s, "/d2/m"), "new", FileType::Regular);
  check(before, s);
}

TEST(ChangePlan, RenamesIntoAndOutOfDirectoriesOfTheSameBatch) {
  Sim s;
  s.make(kRoot, "gone", FileType::Directory);
  s.make(dir_at(s, "/gone"), "f", FileType::Regular);
  s.make(kRoot, "g", FileType::Regular);
  Sim before = s;
  s.make(kRoot, "fresh", FileType::Directory);
  s.make(dir_at(s, "/fresh"), "sub", FileType::Directory);
  s.rename(dir_at(s, "/gone"), "f", dir_at(s, "/fresh/sub"), "f");
  s.rename(kRoot, "g", dir_at(s, "/fresh"), "g");
  s.remove(kRoot, "gone");
  check(before, s);
}

TEST(ChangePlan, HardLinkWhoseOtherNamesGo) {
  Sim s;
  s.make(kRoot, "a", FileType::Directory);
  s.make(kRoot, "one", FileType::Regular);
  const uint64_t f = *s.lookup(kRoot, "one");
  s.link(f, dir_at(s, "/a"), "two");
  Sim before = s;
  s.link(f, kRoot, "three");
  s.remove(kRoot, "one");
  s.remove(dir_at(s, "/a"), "two");
  s.remove(kRoot, "a");
  check(before, s);
}

TEST(ChangePlan, FileReplacedByDirectoryOfTheSameNumberAtTheSameName) {
  Sim s;
  s.make(kRoot, "x", FileType::Regular);
  Sim before = s;
  s.remove(kRoot, "x");
  s.make(kRoot, "x", FileType::Directory);
  s.make(dir_at(s, "/x"), "y", FileType::Regular);
  check(before, s);
}

// Random batches: random trees, then random operation sequences with reuse.
TEST(ChangePlan, RandomBatchesReplayToTheNewTree) {
  const char* names[] = {"a", "b", "c", "d", "e"};
  uint64_t temporary = 0, events = 0;
  // DSVMI_CHANGE_PLAN_SEEDS=N runs seeds 1..N (default 3000).
  const char* env = std::getenv("DSVMI_CHANGE_PLAN_SEEDS");
  const uint32_t seeds = env ? static_cast<uint32_t>(std::strtoul(env, nullptr, 10)) : 3000;
  for (uint32_t seed = 1; seed <= seeds; seed++) {
    std::mt19937 rng(seed);
    auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
    Sim s;
    auto random_dir = [&]() {
      std::vector<uint64_t> dirs;
      for (const auto& [i, n] : s.nodes) {
        if (n.type == FileType::Directory) dirs.push_back(i);
      }
      return dirs[pick(dirs.size())];
    };
    auto random_entry = [&](uint64_t* dir, std::string* name) {
      std::vector<std::pair<uint64_t, std::string>> all;
      for (const auto& [i, n] : s.nodes) {
        for (const auto& [nm, c] : n.entries) all.push_back({i, nm});
      }
      if (all.empty()) return false;
      auto& e = all[pick(all.size())];
      *dir = e.first;
      *name = e.second;
      return true;
    };
    auto step = [&]() {
      const std::string name = names[pick(5)];
      uint64_t d, sd;
      std::string sn;
      switch (pick(9)) {
        case 0:
        case 1:
          s.make(random_dir(), name, FileType::Directory);
          break;
        case 2:
          s.make(random_dir(), name, pick(4) ? FileType::Regular : FileType::Symlink);
          break;
        case 3:
          if (random_entry(&d, &sn)) s.link(*s.lookup(d, sn), random_dir(), name);
          break;
        case 4:
          if (random_entry(&d, &sn)) s.remove(d, sn);
          break;
        case 5:
          if (random_entry(&d, &sn)) s.remove_tree(d, sn);
          break;
        default:
          if (random_entry(&sd, &sn)) s.rename(sd, sn, random_dir(), name);
          break;
      }
    };
    const int setup = 5 + pick(30), batch = 1 + pick(40);
    for (int i = 0; i < setup; i++) step();
    Sim before = s;
    for (int i = 0; i < batch; i++) step();
    uint64_t t = 0;
    auto ev = check(before, s, &t);
    temporary += t;
    events += ev.size();
    if (::testing::Test::HasFailure()) {
      ADD_FAILURE() << "seed " << seed;
      return;
    }
  }
  // The generator does produce the hard cases.
  std::printf("%u batches, %llu events, %llu temporary names\n", seeds, (unsigned long long)events,
              (unsigned long long)temporary);
  EXPECT_GT(temporary, 0u);
  EXPECT_GT(events, 2u * seeds);
}

// The disk is the guest's: directory entries naming free inodes, a
// directory in two places or inside itself, names that the tree does not
// have, duplicates. The plan must still end, apply every operation once and
// keep the tree consistent enough to walk.
TEST(ChangePlan, HostileBatchesTerminate) {
  uint64_t forced = 0;
  for (uint32_t seed = 1; seed <= 500; seed++) {
    std::mt19937 rng(seed);
    auto pick = [&](uint64_t n) { return rng() % n; };
    const char* names[] = {"a", "b", "c"};
    auto random_type = [&]() { return pick(3) ? FileType::Directory : FileType::Regular; };
    Sim empty;
    MemTree tree(empty);
    for (int i = 0; i < 20; i++) {
      tree.add_entry(pick(2) ? kRoot : kFirstIno + pick(8),
                     DirEntry{kFirstIno + pick(8), random_type(), names[pick(3)]});
    }
    ChangePlan plan;
    size_t ops_bound = 0;
    for (uint64_t ino = kRoot; ino < kFirstIno + 8; ino++) {
      if (ino > kRoot && ino < kFirstIno) continue;
      if (pick(3) == 0) continue;
      InodeChange c;
      if (pick(4)) {
        c.old = Inode{};
        c.old->ino = ino;
        c.old->type = random_type();
      }
      if (pick(4)) {
        c.now = Inode{};
        c.now->ino = ino;
        c.now->type = random_type();
      }
      c.new_incarnation = pick(3) == 0;
      for (int k = 0; k < 4; k++) {
        const char* n = names[pick(3)];
        c.old_entries[n] = DirEntry{kFirstIno + pick(8), random_type(), n};
        c.now_entries.push_back(DirEntry{pick(5) ? kFirstIno + pick(8) : kRoot, random_type(), names[pick(3)]});
      }
      ops_bound += c.old_entries.size() + c.now_entries.size();
      plan.add(ino, std::move(c));
    }
    plan.build();
    std::vector<NameEvent> events;
    plan.apply(tree, &events);
    // One event per operation, plus at most one temporary rename each.
    EXPECT_LE(events.size(), 2 * ops_bound) << "seed " << seed;
    forced += plan.forced();
    for (const NameEvent& e : events) EXPECT_LT(e.path.size(), 4096u) << "seed " << seed;
  }
  EXPECT_GT(forced, 0u);  // the generator does reach the no-valid-order case
}

}  // namespace
}  // namespace dsvmi::infer

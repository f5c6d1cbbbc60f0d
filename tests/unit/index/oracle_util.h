// Running the oracles (mkfs.ext4, debugfs, dumpe2fs, sfdisk, sgdisk) from
// tests, and parsing what debugfs prints.
#pragma once

#include "../common/shell.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace dsvmi::test {

using shell::quote;
using shell::run;


struct TempDir {
  std::filesystem::path path;
  TempDir() {
    char tmpl[] = "/tmp/dsvmi-index-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

// Runs debugfs with one command per element of `cmds`; returns the output of
// each command (debugfs echoes "debugfs: CMD" before each).
inline std::vector<std::string> debugfs(const std::string& image, const std::vector<std::string>& cmds) {
  const std::string file = image + ".cmds";
  {
    std::ofstream f(file);
    for (const auto& c : cmds) f << c << "\n";
  }
  std::string out = run("debugfs -f " + quote(file) + " " + quote(image) + " 2>/dev/null");
  std::filesystem::remove(file);
  std::vector<std::string> parts;
  size_t pos = 0;
  const std::string marker = "debugfs: ";
  while ((pos = out.find(marker, pos)) != std::string::npos) {
    size_t line_end = out.find('\n', pos);
    if (line_end == std::string::npos) break;
    size_t next = out.find("\n" + marker, line_end);
    parts.push_back(out.substr(line_end + 1, next == std::string::npos ? std::string::npos : next + 1 - (line_end + 1)));
    pos = next == std::string::npos ? out.size() : next + 1;
  }
  return parts;
}

struct LsEntry {
  uint64_t ino;
  uint32_t mode;  // with type bits
  uint32_t uid, gid;
  std::string name;
};

// Parses `ls -p` output: "/ino/mode/uid/gid/name/size/".
inline std::vector<LsEntry> parse_ls_p(const std::string& text) {
  std::vector<LsEntry> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() < 2 || line[0] != '/') continue;
    std::vector<std::string> f;
    size_t start = 1;
    for (int k = 0; k < 4; ++k) {
      size_t slash = line.find('/', start);
      if (slash == std::string::npos) break;
      f.push_back(line.substr(start, slash - start));
      start = slash + 1;
    }
    if (f.size() < 4) continue;
    // The name runs up to the last two slashes ("name/size/").
    size_t last = line.rfind('/', line.size() - 2);
    std::string name = line.substr(start, last - start);
    if (name == "." || name == ".." || f[0] == "0") continue;  // ino 0: the empty rest of a block
    out.push_back({std::stoull(f[0]), uint32_t(std::stoul(f[1], nullptr, 8)), uint32_t(std::stoul(f[2])),
                   uint32_t(std::stoul(f[3])), name});
  }
  return out;
}

struct StatInfo {
  uint64_t size = 0;
  uint32_t links = 0;
  int64_t mtime = 0;
  uint64_t file_acl = 0;
  uint32_t generation = 0;
  std::map<uint64_t, uint64_t> blocks;  // logical -> physical
  std::set<uint64_t> map_blocks;        // (IND)/(DIND)/(TIND)/(ETBn)
  std::string fast_link;
};

inline StatInfo parse_stat(const std::string& text) {
  StatInfo st;
  auto field = [&](const std::string& key) -> std::string {
    size_t p = text.find(key);
    if (p == std::string::npos) return "";
    p += key.size();
    while (p < text.size() && text[p] == ' ') ++p;
    size_t e = p;
    while (e < text.size() && text[e] != ' ' && text[e] != '\n' && text[e] != '\t') ++e;
    return text.substr(p, e - p);
  };
  if (auto s = field("Size:"); !s.empty()) st.size = std::stoull(s);
  if (auto s = field("Links:"); !s.empty()) st.links = std::stoul(s);
  if (auto s = field("File ACL:"); !s.empty()) st.file_acl = std::stoull(s);
  if (auto s = field("Generation:"); !s.empty()) st.generation = uint32_t(std::stoull(s));
  if (auto s = field("mtime:"); !s.empty()) {
    uint64_t lo = std::stoull(s.substr(2, 8), nullptr, 16);
    int64_t secs = int64_t(int32_t(uint32_t(lo)));
    if (s.size() >= 19 && s[10] == ':') secs += int64_t(std::stoull(s.substr(11, 8), nullptr, 16) & 3) << 32;
    st.mtime = secs;
  }
  if (size_t p = text.find("Fast link dest: \""); p != std::string::npos) {
    p += 17;
    st.fast_link = text.substr(p, text.rfind('"') - p);
  }
  size_t p = text.find("EXTENTS:\n");
  if (p == std::string::npos) p = text.find("BLOCKS:\n");
  if (p != std::string::npos) {
    std::string list = text.substr(text.find('\n', p) + 1);
    std::istringstream in(list.substr(0, list.find("\nTOTAL") == std::string::npos ? list.find('\n', 0)
                                                                                   : list.find("\nTOTAL")));
    std::string item;
    while (std::getline(in, item, ',')) {
      while (!item.empty() && (item[0] == ' ' || item[0] == '\n')) item.erase(0, 1);
      if (item.empty() || item[0] != '(') continue;
      size_t close = item.find("):");
      std::string lhs = item.substr(1, close - 1), rhs = item.substr(close + 2);
      uint64_t p1 = std::stoull(rhs), p2 = p1;
      if (size_t dash = rhs.find('-'); dash != std::string::npos) p2 = std::stoull(rhs.substr(dash + 1));
      if (!lhs.empty() && !std::isdigit((unsigned char)lhs[0])) {
        for (uint64_t b = p1; b <= p2; ++b) st.map_blocks.insert(b);
        continue;
      }
      uint64_t l1 = std::stoull(lhs);
      for (uint64_t k = 0; k <= p2 - p1; ++k) st.blocks[l1 + k] = p1 + k;
    }
  }
  return st;
}

// dumpe2fs's group layout: block -> expected kind name.
inline std::map<uint64_t, std::string> dumpe2fs_layout(const std::string& image) {
  std::map<uint64_t, std::string> out;
  std::istringstream in(run("dumpe2fs " + quote(image) + " 2>/dev/null"));
  std::string line;
  auto range = [&](const std::string& l, const std::string& key, const std::string& kind) {
    size_t p = l.find(key);
    if (p == std::string::npos) return;
    p += key.size();
    uint64_t a = std::stoull(l.substr(p)), b = a;
    size_t q = p;
    while (q < l.size() && std::isdigit((unsigned char)l[q])) ++q;
    if (q < l.size() && l[q] == '-') b = std::stoull(l.substr(q + 1));
    for (uint64_t x = a; x <= b; ++x) out[x] = kind;
  };
  while (std::getline(in, line)) {
    range(line, "superblock at ", "superblock");
    range(line, "Group descriptors at ", "gdt");
    range(line, "Group descriptor at ", "gdt");  // meta_bg
    range(line, "Reserved GDT blocks at ", "gdt");
    range(line, "Block bitmap at ", "block bitmap");
    range(line, "Inode bitmap at ", "inode bitmap");
    range(line, "Inode table at ", "inode table");
  }
  return out;
}

}  // namespace dsvmi::test

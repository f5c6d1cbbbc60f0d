// The outside oracles for NTFS crawls: The Sleuth Kit (`fls -r -p`, `istat`,
// `icat`), ntfs-3g (the volume mounted read-only through FUSE and walked
// with lstat/readlink/listxattr; `ntfsinfo -m` for the geometry), libfsntfs
// (`fsntfsinfo -H`: paths and streams) and a crawl
// recorded by the RecordingSink turned into paths.
#pragma once

#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "../common/recording_sink.h"
#include "../common/shell.h"

namespace dsvmi::testing {

using shell::quote;
using shell::run;

struct TskEntry {
  char type = '?';
  uint64_t addr = 0;
  uint32_t attr_type = 0;
};

// `fls -r -p`: allocated user entries. NTFS's own files ($MFT, ..., $Extend
// and what is in it), $OrphanFiles and the alternate data streams
// ("file:stream", returned in *streams as path -> stream names) are left out.
inline std::map<std::string, TskEntry> tsk_paths(const std::string& tsk_image,
                                                 std::map<std::string, std::set<std::string>>* streams) {
  std::map<std::string, TskEntry> out;
  std::string text = run("TZ=UTC fls -r -p " + tsk_image);
  std::regex line(R"(^([-rdlvV])/([-rdlvV]) (\* )?(\d+)-(\d+)-(\d+)(?:\(realloc\))?:\t(.*)$)");
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::string l = text.substr(pos, nl - pos);
    pos = nl + 1;
    std::smatch m;
    if (!std::regex_match(l, m, line) || m[3].matched) continue;
    std::string name = m[7];
    if (name[0] == '$') continue;
    size_t colon = name.rfind(':');
    if (colon != std::string::npos && name.find('/', colon) == std::string::npos && m[5] == "128") {
      (*streams)["/" + name.substr(0, colon)].insert(name.substr(colon + 1));
      continue;
    }
    out["/" + name] = {m[1].str()[0], std::stoull(m[4]), uint32_t(std::stoul(m[5]))};
  }
  return out;
}

struct TskStat {
  uint64_t links = 0, sequence = 0;
  std::string flags;     // $STANDARD_INFORMATION "Flags:"
  std::string modified;  // "2026-12-03 12:40:37.278227000"
  std::string data_header;       // the unnamed $DATA's "Type:" line
  std::vector<uint64_t> clusters;  // of the unnamed $DATA, non-zero ones
};

inline TskStat tsk_istat(const std::string& tsk_image, uint64_t addr) {
  TskStat st;
  std::string text = run("TZ=UTC istat " + tsk_image + " " + std::to_string(addr));
  std::smatch m;
  if (std::regex_search(text, m, std::regex(R"(\nLinks: (\d+))"))) st.links = std::stoull(m[1]);
  if (std::regex_search(text, m, std::regex(R"(Sequence: (\d+))"))) st.sequence = std::stoull(m[1]);
  size_t si = text.find("$STANDARD_INFORMATION Attribute Values:");
  if (si != std::string::npos) {
    std::string part = text.substr(si, text.find("\n\n", si) - si);
    if (std::regex_search(part, m, std::regex(R"(Flags: ([^\n]*))"))) st.flags = m[1];
    if (std::regex_search(part, m, std::regex(R"(File Modified:\t([0-9-]+ [0-9:.]+))"))) st.modified = m[1];
  }
  size_t d = text.find("Type: $DATA (128-");
  while (d != std::string::npos && text.find("Name: N/A", d) != text.find("Name:", d)) d = text.find("Type: $DATA (128-", d + 1);
  if (d != std::string::npos) {
    size_t eol = text.find('\n', d);
    st.data_header = text.substr(d, eol - d);
    size_t p = eol + 1;
    while (p < text.size() && std::isdigit(static_cast<unsigned char>(text[p]))) {
      size_t q = text.find('\n', p);
      if (q == std::string::npos) q = text.size();
      std::istringstream ls(text.substr(p, q - p));
      for (uint64_t c; ls >> c;)
        if (c != 0) st.clusters.push_back(c);
      p = q + 1;
    }
  }
  return st;
}

// `fsntfsinfo -H` (libyal's libfsntfs): every path ('\\' turned into '/'),
// without NTFS's own files; "file:stream" lines go to *streams.
inline std::set<std::string> fsntfs_paths(const std::string& image, uint64_t offset,
                                          std::map<std::string, std::set<std::string>>* streams) {
  std::set<std::string> out;
  std::istringstream text(run("fsntfsinfo -H -o " + std::to_string(offset) + " " + quote(image)));
  for (std::string l; std::getline(text, l);) {
    if (l.empty() || l[0] != '\\' || l.rfind("\\$", 0) == 0) continue;
    for (char& c : l)
      if (c == '\\') c = '/';
    const size_t slash = l.rfind('/'), colon = l.find(':', slash);
    if (colon != std::string::npos) {
      (*streams)[l.substr(0, colon)].insert(l.substr(colon + 1));
      continue;
    }
    out.insert(l);
  }
  return out;
}

// One file as ntfs-3g shows it through its FUSE mount.
struct MountEntry {
  mode_t mode = 0;
  uint64_t size = 0;
  uint64_t links = 0;
  uint64_t ino = 0;
  int64_t mtime_ns = 0;
  std::string target;               // symlinks
  std::map<std::string, uint64_t> streams;  // user.* xattrs = ADS (streams_interface=xattr)
};

// Walks the mounted volume (without following symlinks).
inline std::map<std::string, MountEntry> mount_walk(const std::string& mnt) {
  std::map<std::string, MountEntry> out;
  namespace fs = std::filesystem;
  for (auto it = fs::recursive_directory_iterator(mnt, fs::directory_options::none); it != fs::recursive_directory_iterator();
       ++it) {
    const std::string p = it->path().string();
    const std::string rel = p.substr(mnt.size());
    struct stat st;
    if (::lstat(p.c_str(), &st) != 0) continue;
    MountEntry e;
    e.mode = st.st_mode;
    e.size = uint64_t(st.st_size);
    e.links = st.st_nlink;
    e.ino = st.st_ino;
    e.mtime_ns = int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    if (S_ISLNK(st.st_mode)) {
      char buf[4096];
      ssize_t n = ::readlink(p.c_str(), buf, sizeof buf);
      if (n > 0) e.target.assign(buf, size_t(n));
    } else {
      char names[65536];
      ssize_t n = ::llistxattr(p.c_str(), names, sizeof names);
      for (ssize_t k = 0; k < n;) {
        std::string name(names + k);
        k += ssize_t(name.size()) + 1;
        if (name.rfind("user.", 0) != 0) continue;
        ssize_t size = ::lgetxattr(p.c_str(), name.c_str(), nullptr, 0);
        e.streams[name.substr(5)] = size < 0 ? 0 : uint64_t(size);
      }
    }
    out[rel] = e;
  }
  return out;
}

}  // namespace dsvmi::testing

// The outside oracles for FAT crawls: mtools (mkfs-independent population,
// `mdir -/ -b -a`, `mtype`, `minfo`), The Sleuth Kit (`fls -r -p`, `istat`)
// and dosfstools (`mkfs.vfat`, `fsck.fat -n`), plus a crawl recorded by the
// RecordingSink and turned into paths.
#pragma once

#include <map>
#include <regex>
#include <string>
#include <vector>

#include "../common/recording_sink.h"
#include "../common/shell.h"

namespace dsvmi::testing {

using shell::quote;
using shell::run;

// Where one FAT volume lies: an image and the byte offset of the volume.
struct Volume {
  std::string image;
  uint64_t offset = 0;
  // "-i 'img@@off'" for mtools, "-o sectors" for TSK.
  std::string m(const std::string& cmd) const {
    return "MTOOLS_SKIP_CHECK=1 TZ=UTC m" + cmd + " -i " + quote(image + "@@" + std::to_string(offset));
  }
  std::string tsk(const std::string& cmd) const {
    return "TZ=UTC " + cmd + " -o " + std::to_string(offset / 512) + " " + quote(image);
  }
};

struct TskEntry {
  char type = '?';     // 'r' or 'd'
  uint64_t addr = 0;   // TSK's metadata address
};

// `fls -r -p`: live entries, without TSK's virtual files and the label.
inline std::map<std::string, TskEntry> tsk_paths(const Volume& v) {
  std::map<std::string, TskEntry> out;
  std::string text = run(v.tsk("fls -r -p"));
  std::regex line(R"(^([rd])/[rd] (\*? ?)(\d+)(?:\([^)]*\))?:\t(.*)$)");
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::string l = text.substr(pos, nl - pos);
    pos = nl + 1;
    std::smatch m;
    if (!std::regex_match(l, m, line)) continue;
    if (!m[2].str().empty()) continue;  // deleted
    const std::string name = m[4];
    if (name.find("(Volume Label Entry)") != std::string::npos) continue;
    out["/" + name] = {m[1].str()[0], std::stoull(m[3])};
  }
  return out;
}

// `istat`: size, attributes line, written time and the non-zero sectors.
struct TskStat {
  uint64_t size = 0;
  std::string attributes, written;
  std::vector<uint64_t> sectors;
};

inline TskStat tsk_istat(const Volume& v, uint64_t addr) {
  TskStat st;
  std::string text = run(v.tsk("istat") + " " + std::to_string(addr));
  std::smatch m;
  if (std::regex_search(text, m, std::regex(R"(\nSize: (\d+))"))) st.size = std::stoull(m[1]);
  if (std::regex_search(text, m, std::regex(R"(File Attributes: ([^\n]*))"))) st.attributes = m[1];
  if (std::regex_search(text, m, std::regex(R"(Written:\t([0-9-]+ [0-9:]+))"))) st.written = m[1];
  size_t s = text.find("Sectors:\n");
  if (s != std::string::npos) {
    std::string rest = text.substr(s + 9);
    size_t p = 0;
    while (p < rest.size()) {
      size_t q = rest.find_first_of(" \n", p);
      if (q == std::string::npos) q = rest.size();
      if (q > p && std::isdigit(static_cast<unsigned char>(rest[p]))) {
        uint64_t n = std::stoull(rest.substr(p, q - p));
        if (n != 0) st.sectors.push_back(n);
      }
      p = q + 1;
    }
  }
  return st;
}

// A `minfo` field ("sector size: 512 bytes" -> "512").
inline std::string minfo_field(const std::string& minfo, const std::string& key) {
  size_t p = minfo.find(key);
  if (p == std::string::npos) return "";
  p += key.size();
  while (p < minfo.size() && (minfo[p] == ' ' || minfo[p] == '=' || minfo[p] == '"')) ++p;
  size_t e = minfo.find_first_of(" \n\"", p);
  return minfo.substr(p, e - p);
}

}  // namespace dsvmi::testing

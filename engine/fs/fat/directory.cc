// Directory entry parsing and VFAT long-name assembly.
//
// Linux semantics where the specification and Linux differ, because the
// guest's kernel decides what the guest sees: a first byte of 0x00 does not
// end the directory (Linux skips it like a free slot and keeps reading), a
// long name is used only if its slots count down to 1 without a gap and all
// carry the checksum of the short entry that follows, otherwise the short
// name stands and the slots are orphans.
#include "directory.h"

#include <cstring>

#include "le.h"
#include "names.h"

namespace dsvmi::fat {
namespace {

constexpr size_t kMaxSlots = 20;  // 20 * 13 = 260 UTF-16 units, more than the 255 allowed

struct LongName {
  bool active = false;
  unsigned expected = 0;  // ordinal the next slot must carry
  unsigned total = 0;
  uint8_t checksum = 0;
  size_t start = 0;       // offset of the first slot
  uint16_t units[kMaxSlots * 13];

  // Precondition: 1 <= ordinal <= kMaxSlots (checked again: a slip here
  // would write outside units).
  void store(const unsigned char* e, unsigned ordinal) {
    if (ordinal == 0 || ordinal > kMaxSlots) return;
    uint16_t* u = units + (ordinal - 1) * 13;
    for (int i = 0; i < 5; ++i) u[i] = le16(e + 1 + 2 * i);
    for (int i = 0; i < 6; ++i) u[5 + i] = le16(e + 14 + 2 * i);
    for (int i = 0; i < 2; ++i) u[11 + i] = le16(e + 28 + 2 * i);
  }
  std::string text() const {
    size_t n = 0;
    while (n < total * 13 && units[n] != 0) ++n;  // 0x0000 ends the name, 0xFFFF pads it
    std::string s;
    append_utf16(units, n, &s);
    return s;
  }
};

}  // namespace

void parse_directory(const unsigned char* p, size_t length, bool fat32, const DirectoryCallbacks& cb,
                     DirectoryCounts* counts) {
  LongName ln;
  auto orphan = [&](size_t at, const char* why) {
    if (!ln.active) return;
    const size_t slots = ln.total - ln.expected;
    counts->orphan_slots += slots;
    if (cb.problem)
      cb.problem(ln.start, std::to_string(slots) + " long-name slot(s) at byte " + std::to_string(ln.start) +
                               " of the directory " + why + " (entry at byte " + std::to_string(at) +
                               "); ignored");
    ln.active = false;
  };
  for (size_t off = 0; off + 32 <= length; off += 32) {
    const unsigned char* e = p + off;
    const uint8_t attr = e[11];
    if (e[0] == 0xE5) {
      if (attr != kAttrLongName) ++counts->deleted;
      orphan(off, "end at a deleted entry");
      continue;
    }
    if (attr == kAttrLongName) {
      const unsigned ordinal = e[0] & 0x3F;
      if (e[0] & 0x40) {
        orphan(off, "are followed by the start of another long name");
        if (ordinal == 0 || ordinal > kMaxSlots) {
          ++counts->orphan_slots;
          if (cb.problem) cb.problem(off, "long-name slot at byte " + std::to_string(off) +
                                              " has ordinal " + std::to_string(ordinal) + "; ignored");
          continue;
        }
        ln.active = true;
        ln.total = ordinal;
        ln.expected = ordinal;
        ln.checksum = e[13];
        ln.start = off;
        std::memset(ln.units, 0, sizeof ln.units);
      } else if (!ln.active || ordinal == 0 || ordinal != ln.expected || e[13] != ln.checksum) {
        // ordinal 0 after the last slot (expected has counted down to 0)
        // is out of sequence too, never slot "0".
        if (ln.active) {
          orphan(off, "are broken by a slot out of sequence");
        }
        ++counts->orphan_slots;
        if (cb.problem) cb.problem(off, "long-name slot at byte " + std::to_string(off) +
                                            " is not part of a long name (ordinal " + std::to_string(ordinal) +
                                            "); ignored");
        continue;
      }
      ln.store(e, ordinal);
      --ln.expected;
      continue;
    }
    if (e[0] == 0x00) {  // free: Linux reads on
      orphan(off, "end at a free entry");
      continue;
    }
    if (attr & kAttrVolume) {
      orphan(off, "end at a volume label");
      if (cb.label) cb.label(short_name(e));
      continue;
    }
    ParsedEntry pe;
    pe.short_name = short_name(e);
    if (ln.active && ln.expected == 0 && ln.checksum == short_name_checksum(e)) {
      pe.name = ln.text();
      pe.long_name = !pe.name.empty();
      pe.slots = 1 + ln.total;
      ln.active = false;
    } else if (ln.active) {
      orphan(off, ln.expected == 0 ? "carry another short name's checksum" : "stop before ordinal 1");
    }
    if (!pe.long_name) {
      pe.name = pe.short_name;
      pe.slots = 1;
    }
    if (pe.name == "." || pe.name == "..") continue;  // Linux makes its own; a long ".." is unreachable
    pe.attr = attr;
    pe.first_cluster = le16(e + 26) | (fat32 ? uint32_t(le16(e + 20)) << 16 : 0);
    pe.size = le32(e + 28);
    pe.create_centiseconds = e[13];
    pe.create_time = le16(e + 14);
    pe.create_date = le16(e + 16);
    pe.access_date = le16(e + 18);
    pe.write_time = le16(e + 22);
    pe.write_date = le16(e + 24);
    pe.offset = off;
    if (cb.entry) cb.entry(pe);
  }
  orphan(length, "end with the directory");
}

}  // namespace dsvmi::fat

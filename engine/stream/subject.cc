// Subject escaping (docs/stream.md, "Subjects").
#include "dsvmi/stream_subject.h"

namespace dsvmi::stream {

namespace {

bool plain(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

bool has_glob(std::string_view s) { return s.find_first_of("*?[]{}\\") != std::string_view::npos; }

}  // namespace

std::string subject_token(std::string_view name) {
  if (name.empty()) return "%";
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(name.size());
  for (char c : name) {
    if (plain(c)) {
      out += c;
    } else {
      unsigned char u = static_cast<unsigned char>(c);
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
  }
  return out;
}

DiskName split_disk_name(std::string_view name) {
  DiskName d;
  size_t a = name.find(':');
  if (a == std::string_view::npos) {
    d.vm = std::string(name);
    return d;
  }
  d.host = std::string(name.substr(0, a));
  size_t b = name.find(':', a + 1);
  if (b == std::string_view::npos) {
    d.vm = std::string(name.substr(a + 1));
    return d;
  }
  d.vm = std::string(name.substr(a + 1, b - a - 1));
  d.disk = std::string(name.substr(b + 1));
  return d;
}

std::string event_subject(std::string_view prefix, const DiskName& d, std::string_view event) {
  std::string s(prefix);
  for (std::string_view part : {std::string_view(d.host), std::string_view(d.vm), std::string_view(d.disk), event}) {
    s += '.';
    s += subject_token(part);
  }
  return s;
}

std::string filter_subject(std::string_view prefix, std::string_view host_glob, std::string_view vm_glob) {
  std::string s(prefix);
  for (std::string_view part : {host_glob, vm_glob}) {
    s += '.';
    s += has_glob(part) ? std::string("*") : subject_token(part);
  }
  return s + ".*.*";
}

}  // namespace dsvmi::stream

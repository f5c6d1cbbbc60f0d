// Policy files (docs/policy.md): JSON, or "key = value" lines with '#'
// comments; `glob` and `hash` may repeat. Unknown keys are errors (a typo must not
// silently watch nothing).
#pragma once
#include <fstream>
#include <sstream>
#include <string>

#include "dsvmi/daemon_json.h"
#include "dsvmi/glob.h"

namespace dsvmi::cli {

inline Status parse_policy_text(const std::string& text, Json* out) {
  static const char* kKeys[] = {"mode", "globs", "ring_size", "pending_ttl", "pending_max", "resync", "hash", "hash_max", "diff_max", "diff_bytes"};
  auto known = [](const std::string& k) {
    for (const char* c : kKeys)
      if (k == c) return true;
    return false;
  };
  Json p(Json::Object{});
  size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '{') {
    Status s = Json::parse(text, &p);
    if (!s) return s;
    for (const auto& [k, v] : p.as_object())
      if (!known(k)) return Status::error("policy: unknown key '" + k + "'");
  } else {
    std::istringstream in(text);
    std::string line;
    int no = 0;
    Json::Array globs, hash;
    while (std::getline(in, line)) {
      ++no;
      if (size_t h = line.find('#'); h != std::string::npos) line.erase(h);
      size_t a = line.find_first_not_of(" \t\r"), b = line.find_last_not_of(" \t\r");
      if (a == std::string::npos) continue;
      line = line.substr(a, b - a + 1);
      size_t eq = line.find('=');
      if (eq == std::string::npos) return Status::error("policy line " + std::to_string(no) + ": expected key = value");
      std::string k = line.substr(0, eq), v = line.substr(eq + 1);
      k.erase(k.find_last_not_of(" \t") + 1);
      v.erase(0, v.find_first_not_of(" \t"));
      if (k == "glob" || k == "hash") {
        (k == "glob" ? globs : hash).push_back(Json(v));
        continue;
      }
      if (!known(k)) return Status::error("policy line " + std::to_string(no) + ": unknown key '" + k + "'");
      p.set(k, v);
    }
    if (!globs.empty()) p.set("globs", Json(globs));
    if (!hash.empty()) p.set("hash", Json(hash));
  }
  if (const Json* m = p.get("mode")) {
    if (!m->is_string() || (m->as_string() != "low-overhead" && m->as_string() != "full"))
      return Status::error("policy: mode must be low-overhead or full");
  }
  // Sizes and seconds: digits (sizes may end in K/M/G), checked here so an
  // engine never starts with a value it would refuse.
  for (const char* key : {"pending_ttl", "pending_max", "ring_size", "hash_max", "diff_max", "diff_bytes"}) {
    const Json* v = p.get(key);
    if (!v) continue;
    std::string t = v->is_number() ? Json(v->as_number()).dump() : v->is_string() ? v->as_string() : "";
    size_t digits = t.find_first_not_of("0123456789");
    bool ok = !t.empty() && digits != 0 &&
              (digits == std::string::npos ||
               (std::string(key) != "pending_ttl" && digits == t.size() - 1 && std::string("KMG").find(t.back()) != std::string::npos));
    if (!ok) return Status::error(std::string("policy: ") + key + " must be a number" +
                                  (std::string(key) == "pending_ttl" ? " of seconds" : " of bytes (K/M/G suffix allowed)"));
  }
  if (const Json* r = p.get("resync")) {
    // Lost ranges (ring overflow) are resynced by the engine re-reading the
    // disk; no other strategy exists yet, so no other value is accepted.
    if (!r->is_string() || r->as_string() != "engine")
      return Status::error("policy: resync supports only 'engine' (the engine re-reads lost ranges)");
  }
  for (const char* key : {"globs", "hash"}) {
    const Json* g = p.get(key);
    if (!g) continue;
    if (!g->is_array()) return Status::error(std::string("policy: ") + key + " must be a list");
    for (const auto& x : g->as_array()) {
      Glob tmp;
      if (!x.is_string()) return Status::error(std::string("policy: ") + key + " must be strings");
      if (Status s = Glob::compile(x.as_string(), &tmp); !s) return Status::error(std::string("policy: ") + key + ": " + s.message());
    }
  }
  *out = p;
  return Status::ok();
}

inline Status load_policy_file(const std::string& path, Json* out) {
  std::ifstream in(path);
  if (!in) return Status::error("cannot read policy file " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  Status s = parse_policy_text(ss.str(), out);
  if (!s) return Status::error(path + ": " + s.message());
  return s;
}

}  // namespace dsvmi::cli

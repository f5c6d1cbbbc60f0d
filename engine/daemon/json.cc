// Recursive-descent JSON parser with a depth limit (no stack exhaustion on
// "[[[[..."), an input size limit, and strict UTF-8-agnostic string handling:
// \uXXXX escapes (with surrogate pairs) are encoded as UTF-8.
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "dsvmi/daemon_json.h"

namespace dsvmi {

namespace {

class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}

  Status value(Json* out, size_t depth) {
    if (depth > Json::kMaxDepth) return fail("nesting deeper than 64");
    ws();
    if (p_ >= s_.size()) return fail("unexpected end of input");
    char c = s_[p_];
    if (c == '{') return object(out, depth);
    if (c == '[') return array(out, depth);
    if (c == '"') {
      std::string str;
      Status st = string(&str);
      if (!st) return st;
      *out = Json(std::move(str));
      return Status::ok();
    }
    if (c == 't') return word("true", Json(true), out);
    if (c == 'f') return word("false", Json(false), out);
    if (c == 'n') return word("null", Json(), out);
    if (c == '-' || (c >= '0' && c <= '9')) return number(out);
    return fail(std::string("unexpected character '") + c + "'");
  }

  Status finish() {
    ws();
    if (p_ != s_.size()) return fail("trailing characters after the value");
    return Status::ok();
  }

 private:
  Status fail(const std::string& what) const {
    return Status::error("json: " + what + " at offset " + std::to_string(p_));
  }
  void ws() {
    while (p_ < s_.size() && (s_[p_] == ' ' || s_[p_] == '\t' || s_[p_] == '\n' || s_[p_] == '\r')) ++p_;
  }
  Status word(std::string_view w, Json v, Json* out) {
    if (s_.substr(p_, w.size()) != w) return fail("invalid literal");
    p_ += w.size();
    *out = std::move(v);
    return Status::ok();
  }
  Status number(Json* out) {
    size_t start = p_;
    if (s_[p_] == '-') ++p_;
    auto digits = [&] {
      size_t d = p_;
      while (p_ < s_.size() && s_[p_] >= '0' && s_[p_] <= '9') ++p_;
      return p_ - d;
    };
    if (!digits()) return fail("number without digits");
    if (p_ < s_.size() && s_[p_] == '.') {
      ++p_;
      if (!digits()) return fail("number without fraction digits");
    }
    if (p_ < s_.size() && (s_[p_] == 'e' || s_[p_] == 'E')) {
      ++p_;
      if (p_ < s_.size() && (s_[p_] == '+' || s_[p_] == '-')) ++p_;
      if (!digits()) return fail("number without exponent digits");
    }
    std::string text(s_.substr(start, p_ - start));
    if (text.find_first_of(".eE") == std::string::npos) {  // an integer: exact if it fits 64 bits
      errno = 0;
      char* end;
      if (text[0] == '-') {
        long long v = std::strtoll(text.c_str(), &end, 10);
        if (errno == 0 && *end == 0) {
          *out = Json(int64_t(v));
          return Status::ok();
        }
      } else {
        unsigned long long v = std::strtoull(text.c_str(), &end, 10);
        if (errno == 0 && *end == 0) {
          *out = Json(uint64_t(v));
          return Status::ok();
        }
      }
    }
    *out = Json(std::strtod(text.c_str(), nullptr));
    return Status::ok();
  }
  Status hex4(uint32_t* v) {
    if (p_ + 4 > s_.size()) return fail("short \\u escape");
    *v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = s_[p_++];
      *v <<= 4;
      if (c >= '0' && c <= '9') *v |= uint32_t(c - '0');
      else if (c >= 'a' && c <= 'f') *v |= uint32_t(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') *v |= uint32_t(c - 'A' + 10);
      else return fail("bad hex digit in \\u escape");
    }
    return Status::ok();
  }
  static void utf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      out->push_back(char(cp));
    } else if (cp < 0x800) {
      out->push_back(char(0xC0 | (cp >> 6)));
      out->push_back(char(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out->push_back(char(0xE0 | (cp >> 12)));
      out->push_back(char(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(char(0x80 | (cp & 0x3F)));
    } else {
      out->push_back(char(0xF0 | (cp >> 18)));
      out->push_back(char(0x80 | ((cp >> 12) & 0x3F)));
      out->push_back(char(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(char(0x80 | (cp & 0x3F)));
    }
  }
  Status string(std::string* out) {
    ++p_;  // opening quote
    while (true) {
      if (p_ >= s_.size()) return fail("unterminated string");
      char c = s_[p_++];
      if (c == '"') return Status::ok();
      if (static_cast<unsigned char>(c) < 0x20) return fail("control character in string");
      if (c != '\\') {
        out->push_back(c);
        continue;
      }
      if (p_ >= s_.size()) return fail("unterminated escape");
      char e = s_[p_++];
      switch (e) {
        case '"': out->push_back('"'); break;
        case '\\': out->push_back('\\'); break;
        case '/': out->push_back('/'); break;
        case 'b': out->push_back('\b'); break;
        case 'f': out->push_back('\f'); break;
        case 'n': out->push_back('\n'); break;
        case 'r': out->push_back('\r'); break;
        case 't': out->push_back('\t'); break;
        case 'u': {
          uint32_t cp = 0;
          Status st = hex4(&cp);
          if (!st) return st;
          if (cp >= 0xD800 && cp < 0xDC00 && s_.substr(p_, 2) == "\\u") {
            p_ += 2;
            uint32_t lo = 0;
            st = hex4(&lo);
            if (!st) return st;
            if (lo < 0xDC00 || lo >= 0xE000) return fail("unpaired surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xD800 && cp < 0xE000) {
            cp = 0xFFFD;  // lone surrogate: replacement character
          }
          utf8(cp, out);
          break;
        }
        default: return fail(std::string("bad escape '\\") + e + "'");
      }
    }
  }
  Status array(Json* out, size_t depth) {
    ++p_;
    Json::Array items;
    ws();
    if (p_ < s_.size() && s_[p_] == ']') {
      ++p_;
      *out = Json(std::move(items));
      return Status::ok();
    }
    while (true) {
      Json v;
      Status st = value(&v, depth + 1);
      if (!st) return st;
      items.push_back(std::move(v));
      ws();
      if (p_ >= s_.size()) return fail("unterminated array");
      if (s_[p_] == ',') { ++p_; continue; }
      if (s_[p_] == ']') { ++p_; break; }
      return fail("expected ',' or ']' in array");
    }
    *out = Json(std::move(items));
    return Status::ok();
  }
  Status object(Json* out, size_t depth) {
    ++p_;
    Json::Object members;
    ws();
    if (p_ < s_.size() && s_[p_] == '}') {
      ++p_;
      *out = Json(std::move(members));
      return Status::ok();
    }
    while (true) {
      ws();
      if (p_ >= s_.size() || s_[p_] != '"') return fail("expected a string key in object");
      std::string key;
      Status st = string(&key);
      if (!st) return st;
      ws();
      if (p_ >= s_.size() || s_[p_] != ':') return fail("expected ':' after object key");
      ++p_;
      Json v;
      st = value(&v, depth + 1);
      if (!st) return st;
      members[std::move(key)] = std::move(v);
      ws();
      if (p_ >= s_.size()) return fail("unterminated object");
      if (s_[p_] == ',') { ++p_; continue; }
      if (s_[p_] == '}') { ++p_; break; }
      return fail("expected ',' or '}' in object");
    }
    *out = Json(std::move(members));
    return Status::ok();
  }

  std::string_view s_;
  size_t p_ = 0;
};

const Json::Array kEmptyArray;
const Json::Object kEmptyObject;

}  // namespace

Status Json::parse(std::string_view text, Json* out) {
  if (text.size() > kMaxInput) return Status::error("json: input larger than 16 MiB");
  Parser p(text);
  Json v;
  Status st = p.value(&v, 0);
  if (!st) return st;
  st = p.finish();
  if (!st) return st;
  *out = std::move(v);
  return Status::ok();
}

const Json::Array& Json::as_array() const { return arr_ ? *arr_ : kEmptyArray; }
const Json::Object& Json::as_object() const { return obj_ ? *obj_ : kEmptyObject; }

// Copy-on-write: values share containers cheaply, writes never alias.
Json::Array& Json::mutable_array() {
  if (type_ != Type::Array) *this = Json(Array{});
  if (arr_.use_count() > 1) arr_ = std::make_shared<Array>(*arr_);
  return *arr_;
}
Json::Object& Json::mutable_object() {
  if (type_ != Type::Object) *this = Json(Object{});
  if (obj_.use_count() > 1) obj_ = std::make_shared<Object>(*obj_);
  return *obj_;
}

const Json* Json::get(std::string_view key) const {
  if (type_ != Type::Object || !obj_) return nullptr;
  auto it = obj_->find(std::string(key));
  return it == obj_->end() ? nullptr : &it->second;
}
std::string Json::get_string(std::string_view key, std::string def) const {
  const Json* v = get(key);
  return v && v->is_string() ? v->as_string() : def;
}
double Json::get_number(std::string_view key, double def) const {
  const Json* v = get(key);
  return v && v->is_number() ? v->as_number() : def;
}
bool Json::get_uint64(uint64_t* v) const {
  if (type_ != Type::Number) return false;
  if (rep_ == Rep::Uint) *v = uint_;
  else if (rep_ == Rep::Int && int_ >= 0) *v = uint64_t(int_);
  else if (rep_ == Rep::Double && num_ >= 0 && num_ < 18446744073709551616.0 && num_ == std::floor(num_)) *v = uint64_t(num_);
  else return false;
  return true;
}
bool Json::get_int64(int64_t* v) const {
  if (type_ != Type::Number) return false;
  if (rep_ == Rep::Int) *v = int_;
  else if (rep_ == Rep::Uint && uint_ <= uint64_t(INT64_MAX)) *v = int64_t(uint_);
  else if (rep_ == Rep::Double && num_ >= -9223372036854775808.0 && num_ < 9223372036854775808.0 && num_ == std::floor(num_)) *v = int64_t(num_);
  else return false;
  return true;
}
uint64_t Json::get_uint64(std::string_view key, uint64_t def) const {
  const Json* j = get(key);
  uint64_t v;
  return j && j->get_uint64(&v) ? v : def;
}
int64_t Json::get_int64(std::string_view key, int64_t def) const {
  const Json* j = get(key);
  int64_t v;
  return j && j->get_int64(&v) ? v : def;
}
void Json::set(const std::string& key, Json v) { mutable_object()[key] = std::move(v); }

std::string Json::dump() const {
  std::string out;
  dump_to(&out);
  return out;
}

void Json::dump_to(std::string* out) const {
  switch (type_) {
    case Type::Null: *out += "null"; return;
    case Type::Bool: *out += bool_ ? "true" : "false"; return;
    case Type::Number: {
      char buf[32];
      if (rep_ == Rep::Int) {
        std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(int_));
        *out += buf;
      } else if (rep_ == Rep::Uint) {
        std::snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(uint_));
        *out += buf;
      } else if (!std::isfinite(num_)) {
        *out += "null";
      } else if (num_ == std::floor(num_) && std::fabs(num_) < 9.007199254740992e15) {
        std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(num_));
        *out += buf;
      } else {  // the shortest text that parses back to the same double
        auto r = std::to_chars(buf, buf + sizeof buf, num_);
        out->append(buf, r.ptr);
      }
      return;
    }
    case Type::String: {
      out->push_back('"');
      for (char c : str_) {
        unsigned char u = static_cast<unsigned char>(c);
        if (c == '"') *out += "\\\"";
        else if (c == '\\') *out += "\\\\";
        else if (c == '\n') *out += "\\n";
        else if (c == '\r') *out += "\\r";
        else if (c == '\t') *out += "\\t";
        else if (u < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", u);
          *out += buf;
        } else {
          out->push_back(c);
        }
      }
      out->push_back('"');
      return;
    }
    case Type::Array: {
      out->push_back('[');
      bool first = true;
      for (const auto& v : as_array()) {
        if (!first) out->push_back(',');
        first = false;
        v.dump_to(out);
      }
      out->push_back(']');
      return;
    }
    case Type::Object: {
      out->push_back('{');
      bool first = true;
      for (const auto& [k, v] : as_object()) {
        if (!first) out->push_back(',');
        first = false;
        Json(k).dump_to(out);
        out->push_back(':');
        v.dump_to(out);
      }
      out->push_back('}');
      return;
    }
  }
}

}  // namespace dsvmi

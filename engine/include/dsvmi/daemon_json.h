// A small JSON value for the daemon's control protocol and QMP. Input comes
// from sockets (a hostile guest cannot reach them, but a confused client or a
// QEMU we do not control can), so parsing is bounded: nesting depth, input
// size, and every error names what was wrong and where.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dsvmi/status.h"

namespace dsvmi {

class Json {
 public:
  enum class Type { Null, Bool, Number, String, Array, Object };
  using Array = std::vector<Json>;
  using Object = std::map<std::string, Json>;

  Json() = default;
  Json(std::nullptr_t) {}
  Json(bool b) : type_(Type::Bool), bool_(b) {}
  // Integers are kept exactly (a 64-bit counter or ring index survives a
  // dump/parse round trip); as_number() gives any number as a double.
  Json(int v) : type_(Type::Number), rep_(Rep::Int), int_(v), num_(v) {}
  Json(unsigned v) : type_(Type::Number), rep_(Rep::Uint), uint_(v), num_(v) {}
  Json(int64_t v) : type_(Type::Number), rep_(Rep::Int), int_(v), num_(double(v)) {}
  Json(uint64_t v) : type_(Type::Number), rep_(Rep::Uint), uint_(v), num_(double(v)) {}
  Json(long long v) : Json(int64_t(v)) {}
  Json(unsigned long long v) : Json(uint64_t(v)) {}
  Json(double v) : type_(Type::Number), num_(v) {}
  Json(const char* s) : type_(Type::String), str_(s) {}
  Json(std::string s) : type_(Type::String), str_(std::move(s)) {}
  Json(Array a) : type_(Type::Array), arr_(std::make_shared<Array>(std::move(a))) {}
  Json(Object o) : type_(Type::Object), obj_(std::make_shared<Object>(std::move(o))) {}

  static constexpr size_t kMaxDepth = 64;
  static constexpr size_t kMaxInput = 16 << 20;
  // Parses exactly one value (surrounding whitespace allowed).
  static Status parse(std::string_view text, Json* out);

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::Null; }
  bool is_bool() const { return type_ == Type::Bool; }
  bool is_number() const { return type_ == Type::Number; }
  bool is_string() const { return type_ == Type::String; }
  bool is_array() const { return type_ == Type::Array; }
  bool is_object() const { return type_ == Type::Object; }

  bool as_bool() const { return bool_; }
  double as_number() const { return num_; }
  // True for a number written (or parsed) as an integer that fits the type;
  // *v gets it exactly.
  bool get_uint64(uint64_t* v) const;
  bool get_int64(int64_t* v) const;
  const std::string& as_string() const { return str_; }
  const Array& as_array() const;
  const Object& as_object() const;
  Array& mutable_array();
  Object& mutable_object();

  // Object member or nullptr (also when this is not an object).
  const Json* get(std::string_view key) const;
  // Convenience lookups with a default when missing or of another type.
  std::string get_string(std::string_view key, std::string def = {}) const;
  double get_number(std::string_view key, double def = 0) const;
  uint64_t get_uint64(std::string_view key, uint64_t def = 0) const;
  int64_t get_int64(std::string_view key, int64_t def = 0) const;
  void set(const std::string& key, Json v);

  // Compact single-line serialisation (never contains a raw newline).
  std::string dump() const;

 private:
  void dump_to(std::string* out) const;
  enum class Rep { Double, Int, Uint };  // how a Number is held
  Type type_ = Type::Null;
  Rep rep_ = Rep::Double;
  bool bool_ = false;
  int64_t int_ = 0;
  uint64_t uint_ = 0;
  double num_ = 0;
  std::string str_;
  std::shared_ptr<Array> arr_;
  std::shared_ptr<Object> obj_;
};

}  // namespace dsvmi

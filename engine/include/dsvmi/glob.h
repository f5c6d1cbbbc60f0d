// Path globs for gate policies: '*' and '?' stay inside one path component,
// '**' crosses components ("/home/**/*.txt" matches "/home/a.txt" and
// "/home/u/d/a.txt"; "/var/**" matches everything below /var), [a-z] and
// [!a-z] are classes, '\' escapes. Matching is a set-of-states simulation:
// O(pattern x path) time, no backtracking blow-up on hostile names.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "dsvmi/status.h"

namespace dsvmi {

class Glob {
 public:
  // Patterns longer than 4096 bytes are refused.
  static Status compile(std::string_view pattern, Glob* out);
  bool matches(std::string_view path) const;
  const std::string& pattern() const { return pattern_; }

 private:
  enum class Op : unsigned char { Literal, AnyChar, Class, Star, DoubleStar, Dirs };
  struct Token {
    Op op;
    char literal;
    bool negate;
    std::string ranges;  // pairs lo,hi for Class
  };
  std::string pattern_;
  std::vector<Token> tokens_;
};

}  // namespace dsvmi

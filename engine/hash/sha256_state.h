// Sha256State: a SHA-256 computation in progress, as a plain value that can
// be copied and kept (one per checkpoint of a file, docs/hashes.md).
//
// OpenSSL's EVP contexts are opaque heap objects; its low-level SHA256_CTX
// is a 112-byte struct holding the midstate and the partial block, which is
// exactly what a checkpoint must keep. That API is deprecated in OpenSSL 3
// but present and stable; only this file touches it.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dsvmi/content_hash.h"

#ifndef OPENSSL_SUPPRESS_DEPRECATED
#define OPENSSL_SUPPRESS_DEPRECATED
#endif
#include <openssl/sha.h>

namespace dsvmi {

class Sha256State {
 public:
  Sha256State() { SHA256_Init(&ctx_); }
  void update(const uint8_t* data, size_t n) { SHA256_Update(&ctx_, data, n); }
  // The digest of everything so far; the state itself is unchanged.
  Sha256Digest finish() const {
    SHA256_CTX copy = ctx_;
    Sha256Digest d{};
    SHA256_Final(d.data(), &copy);
    return d;
  }

 private:
  SHA256_CTX ctx_;
};

}  // namespace dsvmi

#include "block_view.h"

#include <algorithm>
#include <cstring>

namespace dsvmi::infer {

Status BlockView::get_block(uint64_t b, uint8_t* out, bool fresh) {
  if (b >= blocks()) return Status::error("block " + std::to_string(b) + " is outside the file system");
  auto it = shadow_.find(b);
  if (it != shadow_.end()) {
    std::memcpy(out, it->second.data(), bs_);
    return Status::ok();
  }
  auto c = fresh ? clean_.end() : clean_.find(b);
  if (c != clean_.end()) {
    std::memcpy(out, c->second.data(), bs_);
  } else {
    Status s = disk_.read(base_ + b * bs_, std::span<std::byte>(reinterpret_cast<std::byte*>(out), bs_));
    if (!s) return s;
    disk_block_reads++;
    if (clean_order_.size() < kCleanCacheBlocks) {
      clean_order_.push_back(b);
    } else {
      clean_.erase(clean_order_[clean_next_]);
      clean_order_[clean_next_] = b;
      clean_next_ = (clean_next_ + 1) % kCleanCacheBlocks;
    }
    clean_[b].assign(out, out + bs_);
  }
  auto p = pending_.find(b);
  if (p != pending_.end()) {
    for (const PendingPiece& piece : p->second) std::memcpy(out + piece.offset, piece.bytes.data(), piece.bytes.size());
  }
  return Status::ok();
}

Status BlockView::read_data(uint64_t b, uint64_t in, std::span<uint8_t> out) {
  if (b >= blocks() || in > (blocks() - b) * bs_ || out.size() > (blocks() - b) * bs_ - in) {
    return Status::error("data read at block " + std::to_string(b) + " runs past the file system");
  }
  const uint64_t at = b * bs_ + in;
  Status s = disk_.read(base_ + at, std::as_writable_bytes(out));
  if (!s) return s;
  if (shadow_.empty()) return Status::ok();
  const uint64_t first = at / bs_, last = (at + out.size() + bs_ - 1) / bs_;
  for (uint64_t k = first; k < last; k++) {
    auto it = shadow_.find(k);
    if (it == shadow_.end()) continue;
    const uint64_t from = std::max(at, k * bs_), to = std::min<uint64_t>(at + out.size(), (k + 1) * bs_);
    std::memcpy(out.data() + (from - at), it->second.data() + (from - k * bs_), to - from);
  }
  return Status::ok();
}

Status BlockView::read(uint64_t offset, std::span<std::byte> out) {
  if (offset > disk_.size() || out.size() > disk_.size() - offset) {
    return Status::error("read past the end of the disk at " + std::to_string(offset));
  }
  if (offset + out.size() <= base_ || offset >= base_ + size_) return disk_.read(offset, out);
  std::vector<uint8_t> block(bs_);
  uint64_t done = 0;
  while (done < out.size()) {
    uint64_t at = offset + done;
    if (at < base_ || at >= base_ + blocks() * bs_) {
      // Outside the file system's blocks: straight from the disk, one byte
      // run up to the next boundary.
      uint64_t until = at < base_ ? base_ : offset + out.size();
      uint64_t n = std::min<uint64_t>(until, offset + out.size()) - at;
      Status s = disk_.read(at, out.subspan(done, n));
      if (!s) return s;
      done += n;
      continue;
    }
    uint64_t b = (at - base_) / bs_;
    uint32_t in = static_cast<uint32_t>((at - base_) % bs_);
    uint64_t n = std::min<uint64_t>(bs_ - in, out.size() - done);
    Status s = get_block(b, block.data());
    if (!s) return s;
    std::memcpy(out.data() + done, block.data() + in, n);
    done += n;
  }
  return Status::ok();
}

std::vector<uint8_t>* BlockView::shadow(uint64_t b) {
  auto it = shadow_.find(b);
  return it == shadow_.end() ? nullptr : &it->second;
}

Status BlockView::shadow_write(uint64_t b, uint32_t offset, const uint8_t* data, uint32_t len) {
  auto it = shadow_.find(b);
  if (it == shadow_.end()) {
    std::vector<uint8_t> block(bs_);
    if (offset != 0 || len != bs_) {
      Status s = get_block(b, block.data());
      if (!s) return s;
    }
    it = shadow_.emplace(b, std::move(block)).first;
  }
  std::memcpy(it->second.data() + offset, data, len);
  return Status::ok();
}

void BlockView::shadow_set(uint64_t b, const uint8_t* block) {
  auto& v = shadow_[b];
  v.assign(block, block + bs_);
}

void BlockView::drop_range(uint64_t first, uint64_t last) {
  auto in = [&](uint64_t b) { return b >= first && b < last; };
  std::erase_if(shadow_, [&](const auto& kv) { return in(kv.first); });
  std::erase_if(clean_, [&](const auto& kv) { return in(kv.first); });
  for (auto it = pending_.lower_bound(first); it != pending_.end() && it->first < last;) {
    for (const PendingPiece& p : it->second) pending_bytes_ -= p.bytes.size() + sizeof(PendingPiece);
    it = pending_.erase(it);
  }
  if (pending_.empty()) pending_order_.clear();
}

void BlockView::add_pending(uint64_t b, PendingPiece piece) {
  pending_bytes_ += piece.bytes.size() + sizeof(PendingPiece);
  auto& list = pending_[b];
  if (list.empty()) pending_order_.push_back(b);
  // A later write that covers an earlier piece supersedes it.
  for (auto it = list.begin(); it != list.end();) {
    if (it->offset >= piece.offset && it->offset + it->bytes.size() <= piece.offset + piece.bytes.size()) {
      pending_bytes_ -= it->bytes.size() + sizeof(PendingPiece);
      it = list.erase(it);
    } else {
      ++it;
    }
  }
  list.push_back(std::move(piece));
}

size_t BlockView::evict_oldest_pending() {
  while (!pending_order_.empty()) {
    uint64_t b = pending_order_.front();
    pending_order_.pop_front();
    auto it = pending_.find(b);
    if (it == pending_.end()) continue;
    size_t n = it->second.size();
    drop_pending(b);
    return n;
  }
  return 0;
}

void BlockView::drop_pending(uint64_t b) {
  auto it = pending_.find(b);
  if (it == pending_.end()) return;
  for (const PendingPiece& p : it->second) pending_bytes_ -= p.bytes.size() + sizeof(PendingPiece);
  pending_.erase(it);
  if (pending_.empty()) pending_order_.clear();
}

}  // namespace dsvmi::infer

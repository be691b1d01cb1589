#include "store/internal/sql_reader_pool.h"

#include <utility>

namespace baton::store::sql {

ReaderPool::ReaderPool(std::string file, int busy_timeout_ms, size_t max_idle)
    : file_(std::move(file)),
      busy_timeout_ms_(busy_timeout_ms),
      max_idle_(max_idle) {}

ReaderPool::Lease ReaderPool::Borrow() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!idle_.empty()) {
      std::unique_ptr<Connection> connection = std::move(idle_.back());
      idle_.pop_back();
      return Lease(this, std::move(connection));
    }
  }
  // Opened outside mu_: other borrowers need not wait for the file system.
  return Lease(this, Connection::OpenReadOnly(file_, busy_timeout_ms_));
}

void ReaderPool::GiveBack(std::unique_ptr<Connection> connection) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_.size() < max_idle_) {
      idle_.push_back(std::move(connection));
      return;
    }
  }
  connection.reset();  // closed outside mu_
}

ReaderPool::Lease::Lease(ReaderPool* pool,
                         std::unique_ptr<Connection> connection)
    : pool_(pool), connection_(std::move(connection)) {}

ReaderPool::Lease::Lease(Lease&& other) noexcept
    : pool_(other.pool_), connection_(std::move(other.connection_)) {}

ReaderPool::Lease::~Lease() {
  if (connection_) pool_->GiveBack(std::move(connection_));
}

}  // namespace baton::store::sql

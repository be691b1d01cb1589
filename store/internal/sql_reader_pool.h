#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "store/internal/sql_connection.h"

namespace baton::store::sql {

// Read-only connections to one SQLite file in WAL mode, opened when a
// borrower finds none idle and kept for the next one (each with its own
// prepared statements). Safe to call from many threads; a borrowed
// connection is its borrower's alone until the Lease ends.
class ReaderPool {
 public:
  // `max_idle`: connections kept open between borrows; more are closed.
  ReaderPool(std::string file, int busy_timeout_ms, size_t max_idle);
  ReaderPool(const ReaderPool&) = delete;
  ReaderPool& operator=(const ReaderPool&) = delete;

  // One borrowed connection; gives it back when destroyed.
  class Lease {
   public:
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&&) = delete;
    Lease(const Lease&) = delete;
    ~Lease();
    Connection& connection() const { return *connection_; }

   private:
    friend class ReaderPool;
    Lease(ReaderPool* pool, std::unique_ptr<Connection> connection);
    ReaderPool* pool_;
    std::unique_ptr<Connection> connection_;
  };

  // An idle connection, or a new one (Connection::OpenReadOnly's errors).
  Lease Borrow();

 private:
  void GiveBack(std::unique_ptr<Connection> connection);

  const std::string file_;
  const int busy_timeout_ms_;
  const size_t max_idle_;
  std::mutex mu_;  // guards idle_
  std::vector<std::unique_ptr<Connection>> idle_;
};

}  // namespace baton::store::sql

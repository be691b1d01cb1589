#pragma once

#include <chrono>

namespace baton::orchestrator {

// The time the coordinator decides by. Now() is wall time, what the lineage
// records and what retry backoff and stage budgets count in; Steady() never
// jumps and times leases. The system clock by default (SystemClock());
// tests pass a clock they move by hand, so nothing in them sleeps.
class Clock {
 public:
  virtual ~Clock() = default;
  // Seconds since the Unix epoch.
  virtual double Now() const = 0;
  virtual std::chrono::steady_clock::time_point Steady() const = 0;
};

// The machine's clocks (std::chrono::system_clock and steady_clock).
const Clock& SystemClock();

}  // namespace baton::orchestrator

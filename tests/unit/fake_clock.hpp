#pragma once

// A clock that moves only when the test says so.

#include "core/time.hpp"

namespace cerberus::test {

class FakeClock final : public core::Clock {
public:
    core::Usec realtime() const override { return wall_; }
    core::Usec monotonic() const override { return mono_; }
    void advance(core::Usec usec) {
        wall_ += usec;
        mono_ += usec;
    }

private:
    core::Usec wall_ = 1'700'000'000 * core::USEC_PER_SEC;
    core::Usec mono_ = 1'000 * core::USEC_PER_SEC;
};

}  // namespace cerberus::test

#pragma once

#include <algorithm>

#include "core/time.hpp"

namespace cerberus::daemon {

inline constexpr core::Usec RETRY_MIN_USEC = 100 * core::USEC_PER_MSEC;
inline constexpr core::Usec RETRY_MAX_USEC = 5 * core::USEC_PER_SEC;

// Waits between retries: from RETRY_MIN_USEC, doubling up to RETRY_MAX_USEC.
class Backoff {
public:
    core::Usec next() {
        const core::Usec out = current_;
        current_ = std::min(current_ * 2, RETRY_MAX_USEC);
        return out;
    }
    void reset() { current_ = RETRY_MIN_USEC; }

private:
    core::Usec current_ = RETRY_MIN_USEC;
};

}  // namespace cerberus::daemon

#pragma once

// Deletes transitions older than --keep: a batch at start-up, the next batches shortly after
// while a batch comes back full, then once an hour.

#include <optional>

#include "daemon/event_loop.hpp"
#include "store/store.hpp"

namespace cerberus::daemon {

inline constexpr core::Usec RETENTION_EVERY_USEC = 3600 * core::USEC_PER_SEC;
inline constexpr core::Usec RETENTION_NEXT_BATCH_USEC = 50 * core::USEC_PER_MSEC;
inline constexpr int RETENTION_BATCH = 2000;

class Retention final : public EventSource {
public:
    // Nothing is deleted without `keep_usec`. The first batch is due at once.
    Retention(store::Database& db, std::optional<core::Usec> keep_usec, const core::Clock& clock,
              int batch = RETENTION_BATCH);

    std::optional<core::Usec> deadline(core::Usec /*now*/) const override { return next_at_; }
    void onWake(core::Usec now) override;

private:
    store::Database& db_;
    std::optional<core::Usec> keep_usec_;
    const core::Clock& clock_;
    int batch_;
    std::optional<core::Usec> next_at_;  // monotonic
};

}  // namespace cerberus::daemon

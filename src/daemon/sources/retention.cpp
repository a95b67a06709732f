#include "daemon/sources/retention.hpp"

#include "daemon/log_line.hpp"
#include "daemon/sources/backoff.hpp"

namespace cerberus::daemon {

using core::Usec;

Retention::Retention(store::Database& db, std::optional<Usec> keep_usec, const core::Clock& clock,
                     int batch)
    : db_(db), keep_usec_(keep_usec), clock_(clock), batch_(batch) {
    if (keep_usec_) next_at_ = clock_.monotonic();
}

void Retention::onWake(Usec now) {
    if (!keep_usec_ || !next_at_ || now < *next_at_) return;
    const auto deleted = store::pruneTransitions(db_, clock_.realtime() - *keep_usec_, batch_);
    if (!deleted.ok()) {
        detail::logLine(core::Priority::Warning, "retention: %s; retrying later",
                        deleted.error().c_str());
        next_at_ = now + RETRY_MAX_USEC;
        return;
    }
    next_at_ = now + (deleted.value() == batch_ ? RETENTION_NEXT_BATCH_USEC : RETENTION_EVERY_USEC);
}

}  // namespace cerberus::daemon

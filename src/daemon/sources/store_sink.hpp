#pragma once

// Where the sources' transitions go: the evaluator first, then the history writer.

#include <cstdint>
#include <map>
#include <utility>

#include "daemon/alerting.hpp"
#include "daemon/metrics.hpp"
#include "ingest/systemd_source.hpp"
#include "store/store.hpp"

namespace cerberus::daemon {

using TransitionCounts = std::map<std::pair<core::Event, core::Source>, std::uint64_t>;

class StoreSink final : public ingest::TransitionSink {
public:
    StoreSink(store::HistoryWriter& writer, Alerting& alerting)
        : writer_(writer), alerting_(alerting) {}
    void onTransition(core::Transition transition) override {
        ++transitions_;
        ++by_event_[{transition.event, transition.source}];
        units_.observe(transition);
        // The transition goes first so that its alert change lands in the same flush.
        alerting_.observe(transition);
        writer_.add(std::move(transition));
    }
    void onUnit(const core::UnitSnapshot& snapshot) override {
        units_.observe(snapshot);
        writer_.putUnit(snapshot);
    }
    void onManager(const std::string& identity) override { writer_.putManager(identity); }
    std::uint64_t transitions() const { return transitions_; }
    const TransitionCounts& byEvent() const { return by_event_; }
    const UnitCounters& units() const { return units_; }

private:
    store::HistoryWriter& writer_;
    Alerting& alerting_;
    std::uint64_t transitions_ = 0;
    TransitionCounts by_event_;
    UnitCounters units_;  // for /metrics
};

}  // namespace cerberus::daemon

#pragma once

// The `cerberus emit` socket's connections (ingest::EmitServer) on the loop.

#include "daemon/event_loop.hpp"

namespace cerberus::ingest {
class EmitServer;
}

namespace cerberus::daemon {

class EmitIntake final : public EventSource {
public:
    EmitIntake(ingest::EmitServer& server, const core::Clock& clock)
        : server_(server), clock_(clock) {}
    std::optional<Watch> watch() const override;
    std::optional<core::Usec> deadline(core::Usec now) const override;
    void onWake(core::Usec now) override;

private:
    ingest::EmitServer& server_;
    const core::Clock& clock_;
};

}  // namespace cerberus::daemon

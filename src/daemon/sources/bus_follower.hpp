#pragma once

// Follows systemd on the bus and reconnects, with a backoff, when the connection is lost.

#include <cstddef>
#include <optional>
#include <string>

#include "daemon/event_loop.hpp"
#include "daemon/sources/backoff.hpp"

namespace cerberus::ingest {
class SystemdSource;
}

namespace cerberus::daemon {

// What the follower drives: ingest::SystemdSource (SystemdBus below), or a fake in tests.
class Bus {
public:
    virtual ~Bus() = default;
    virtual bool connected() const = 0;
    // nullopt once connected; else why not, in one sentence.
    virtual std::optional<std::string> connect() = 0;
    // Handles what is pending; false when the connection was lost (see lastError()).
    virtual bool process() = 0;
    virtual std::string lastError() const = 0;
    virtual std::size_t unitsTracked() const = 0;
    virtual std::optional<Watch> watch() const = 0;
    virtual std::optional<core::Usec> deadline() const = 0;  // monotonic
};

class SystemdBus final : public Bus {
public:
    explicit SystemdBus(ingest::SystemdSource& source) : source_(source) {}
    bool connected() const override;
    std::optional<std::string> connect() override;
    bool process() override;
    std::string lastError() const override;
    std::size_t unitsTracked() const override;
    std::optional<Watch> watch() const override;
    std::optional<core::Usec> deadline() const override;

private:
    ingest::SystemdSource& source_;
};

class BusFollower final : public EventSource {
public:
    // `name` says which bus in log lines ("system bus").
    BusFollower(Bus& bus, std::string name) : bus_(bus), name_(std::move(name)) {}

    std::optional<Watch> watch() const override { return bus_.watch(); }
    std::optional<core::Usec> deadline(core::Usec now) const override;
    void onWake(core::Usec now) override;
    // When the next connection attempt is due; nullopt while connected.
    std::optional<core::Usec> reconnectAt() const { return reconnect_at_; }

private:
    void reconnect(core::Usec now);

    Bus& bus_;
    std::string name_;
    Backoff backoff_;
    std::optional<core::Usec> reconnect_at_;
    bool failure_logged_ = false;  // one warning per outage, not one per attempt
};

}  // namespace cerberus::daemon

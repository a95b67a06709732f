#include "daemon/sources/emit_intake.hpp"

#include <sys/epoll.h>

#include "ingest/emit.hpp"

namespace cerberus::daemon {

std::optional<Watch> EmitIntake::watch() const { return Watch{server_.fd(), EPOLLIN}; }

std::optional<core::Usec> EmitIntake::deadline(core::Usec /*now*/) const {
    return server_.deadline();
}

void EmitIntake::onWake(core::Usec now) { server_.process(clock_.realtime(), now); }

}  // namespace cerberus::daemon

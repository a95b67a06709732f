#include "daemon/sources/signals.hpp"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "core/error.hpp"

namespace cerberus::daemon {

namespace {

core::UniqueFd makeSignalFd() {
    sigset_t mask;
    // Cannot fail with a valid set and these signal numbers.
    (void)sigemptyset(&mask);
    (void)sigaddset(&mask, SIGTERM);
    (void)sigaddset(&mask, SIGINT);
    (void)sigaddset(&mask, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &mask, nullptr) < 0)
        throw core::Error(core::ExitCode::Failure,
                          std::string("cannot block signals: ") + std::strerror(errno));
    core::UniqueFd fd(signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!fd)
        throw core::Error(core::ExitCode::Failure,
                          std::string("cannot create a signalfd: ") + std::strerror(errno));
    return fd;
}

}  // namespace

Signals::Signals(std::function<void()> on_stop, std::function<void()> on_reload)
    : fd_(makeSignalFd()), on_stop_(std::move(on_stop)), on_reload_(std::move(on_reload)) {}

std::optional<Watch> Signals::watch() const { return Watch{fd_.get(), EPOLLIN}; }

// Reads until EAGAIN: the fd is non-blocking, and a short read cannot happen on a signalfd.
void Signals::onWake(core::Usec /*now*/) {
    signalfd_siginfo info{};
    while (read(fd_.get(), &info, sizeof info) == sizeof info) {
        if (info.ssi_signo == SIGTERM || info.ssi_signo == SIGINT) on_stop_();
        if (info.ssi_signo == SIGHUP) on_reload_();
    }
}

}  // namespace cerberus::daemon

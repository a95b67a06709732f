#pragma once

#include <pthread.h>
#include <signal.h>

#include <thread>
#include <utility>

namespace cerberus::core {

// Starts a thread that takes no signal. The daemon reads SIGTERM, SIGINT and SIGHUP from a
// signalfd on its loop thread; sent to any other thread, one would kill the process instead.
template <typename Body>
std::thread startThreadWithoutSignals(Body&& body) {
    sigset_t all;
    sigset_t before;
    (void)sigfillset(&all);  // fails only for a null set
    // pthread_sigmask fails only for an invalid `how` or a bad pointer, neither possible here.
    (void)pthread_sigmask(SIG_SETMASK, &all, &before);
    std::thread thread(std::forward<Body>(body));
    (void)pthread_sigmask(SIG_SETMASK, &before, nullptr);
    return thread;
}

}  // namespace cerberus::core

#pragma once

#include <stdexcept>
#include <string>
#include <utility>
#include <variant>

namespace cerberus::core {

// Exit codes, documented in README.md ("Exit codes"). main() alone turns errors into these.
enum class ExitCode : int {
    Ok = 0,
    Failure = 1,   // a runtime failure not covered below
    Usage = 2,     // unknown flag, bad value
    Database = 3,  // the database cannot be opened, created, migrated or read
    Bus = 4,       // the bus is not there or systemd does not answer on it
    Held = 5,      // another `cerberus run` holds the database
};

// A failure that travels up to main(): one sentence for the operator and an exit code.
class Error : public std::runtime_error {
public:
    Error(ExitCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
    ExitCode code() const { return code_; }

private:
    ExitCode code_;
};

}  // namespace cerberus::core

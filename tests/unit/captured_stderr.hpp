#pragma once

// What the code under test writes to stderr (its log lines) while this lives.

#include <doctest/doctest.h>
#include <stdio.h>
#include <unistd.h>

#include <string>

namespace cerberus::test {

class CapturedStderr {
public:
    CapturedStderr() {
        file_ = ::tmpfile();
        REQUIRE(file_ != nullptr);
        REQUIRE(::fflush(stderr) == 0);
        saved_ = ::dup(STDERR_FILENO);
        REQUIRE(saved_ >= 0);
        REQUIRE(::dup2(::fileno(file_), STDERR_FILENO) >= 0);
    }
    CapturedStderr(const CapturedStderr&) = delete;
    CapturedStderr& operator=(const CapturedStderr&) = delete;
    ~CapturedStderr() {
        // Restoring cannot be reported from a destructor; a failure shows in later output.
        (void)::fflush(stderr);
        (void)::dup2(saved_, STDERR_FILENO);
        (void)::close(saved_);
        (void)::fclose(file_);
    }

    // Everything written so far.
    std::string text() const {
        REQUIRE(::fflush(stderr) == 0);
        std::string out;
        char buffer[4096];
        const off_t size = ::lseek(::fileno(file_), 0, SEEK_END);
        REQUIRE(size >= 0);
        for (off_t at = 0; at < size;) {
            const ssize_t n = ::pread(::fileno(file_), buffer, sizeof buffer, at);
            REQUIRE(n > 0);
            out.append(buffer, static_cast<std::size_t>(n));
            at += n;
        }
        return out;
    }

    // How many times `needle` occurs in text().
    std::size_t count(const std::string& needle) const {
        const std::string all = text();
        std::size_t found = 0;
        for (auto at = all.find(needle); at != std::string::npos; at = all.find(needle, at + 1))
            ++found;
        return found;
    }

private:
    FILE* file_ = nullptr;
    int saved_ = -1;
};

}  // namespace cerberus::test

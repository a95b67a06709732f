#pragma once

// A directory of the test's own under $TMPDIR, removed with everything in it at the end.

#include <doctest/doctest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

namespace cerberus::test {

class TempDir {
public:
    TempDir() {
        std::string pattern =
            (std::filesystem::temp_directory_path() / "cerberus-test-XXXXXX").string();
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        path_ = pattern;
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    std::string path() const { return path_.string(); }
    // The path of `name` inside; nothing is created.
    std::string file(const std::string& name) const { return (path_ / name).string(); }
    // Writes `text` to `name` inside and returns its path.
    std::string write(const std::string& name, const std::string& text) const {
        const auto p = path_ / name;
        std::ofstream(p) << text;
        return p.string();
    }

private:
    std::filesystem::path path_;
};

}  // namespace cerberus::test

// Replays every saved fuzz input through its entry, in the normal build: a crash once found
// stays fixed. Usage: fuzz_corpus ROOT... where each ROOT holds one directory per target
// (fuzz/corpus/rules/, fuzz/regressions/emit/, ...).

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "entries.hpp"

namespace fs = std::filesystem;

int main(int argc, char** argv) {
    std::map<std::string, std::size_t> replayed;
    for (int i = 1; i < argc; ++i) {
        const fs::path root = argv[i];
        if (!fs::is_directory(root)) continue;  // fuzz/regressions/ may not exist yet
        for (const auto& dir : fs::directory_iterator(root)) {
            if (!dir.is_directory()) continue;
            const std::string target = dir.path().filename().string();
            const auto entry = cerberus::fuzz::entryNamed(target);
            if (entry == nullptr) {
                std::fprintf(stderr, "fuzz_corpus: %s: no fuzz target named '%s'\n",
                             dir.path().c_str(), target.c_str());
                return 1;
            }
            std::vector<fs::path> files;
            for (const auto& file : fs::directory_iterator(dir.path()))
                if (file.is_regular_file()) files.push_back(file.path());
            for (const auto& file : files) {
                std::ifstream in(file, std::ios::binary);
                const std::vector<char> bytes{std::istreambuf_iterator<char>(in), {}};
                if (!in || in.bad()) {
                    std::fprintf(stderr, "fuzz_corpus: cannot read %s\n", file.c_str());
                    return 1;
                }
                // Named before it runs: an abort below then says which input broke.
                std::fprintf(stderr, "%s\n", file.c_str());
                entry({reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()});
                ++replayed[target];
            }
        }
    }
    std::size_t total = 0;
    for (const auto& [target, n] : replayed) {
        std::printf("%s: %zu inputs\n", target.c_str(), n);
        total += n;
    }
    for (const char* target : {"rules", "time", "emit", "supervisor"}) {
        if (!replayed.contains(target)) {
            std::fprintf(stderr, "fuzz_corpus: no saved input for '%s'\n", target);
            return 1;
        }
    }
    std::printf("%zu inputs replayed, none broke an invariant\n", total);
    return 0;
}

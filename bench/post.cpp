// The bare cost of one libcurl POST to a loopback sink: the floor under alert latency.
// Usage: bench_post URL [N]; prints p50 and p99 of N sequential POSTs over one handle.

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: bench_post URL [N]\n");
        return 2;
    }
    const int n = argc > 2 ? std::atoi(argv[2]) : 100;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL* easy = curl_easy_init();
    if (easy == nullptr) return 1;
    const std::string body = R"({"version":1,"status":"firing","summary":"bench"})";
    curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
    headers = curl_slist_append(headers, "Expect:");
    curl_easy_setopt(easy, CURLOPT_URL, argv[1]);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(
        easy, CURLOPT_WRITEFUNCTION,
        +[](char*, size_t size, size_t count, void*) { return size * count; });
    std::vector<double> ms;
    for (int i = 0; i < n; ++i) {
        const auto start = std::chrono::steady_clock::now();
        if (curl_easy_perform(easy) != CURLE_OK) return 1;
        ms.push_back(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                .count());
    }
    std::sort(ms.begin(), ms.end());
    // Nearest rank, as bench/alert_latency.py: p99 of 100 is the 99th value, not the maximum.
    const auto rank = [&ms](std::size_t p) {
        return ms[std::max<std::size_t>(1, (p * ms.size() + 99) / 100) - 1];
    };
    std::printf("%.3f %.3f\n", rank(50), rank(99));
    curl_slist_free_all(headers);
    curl_easy_cleanup(easy);
    curl_global_cleanup();
    return 0;
}

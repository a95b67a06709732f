// A loopback HTTP sink for latency benchmarks: it stamps each request with CLOCK_MONOTONIC
// when its first byte is read (not after a parser and a thread hand-off), answers 200 and
// keeps the connection open.
// Usage: bench_sink; prints "port N" once, then "MONO_USEC PATH" per request, and exits
// when its standard input closes.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <map>
#include <string>

namespace {

long long monoUsec() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<long long>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

struct Connection {
    std::string buffer;
    long long first_byte_usec = 0;
};

// One whole request at the front of the buffer: its length, or 0 when more is to come.
std::size_t requestLength(const std::string& buffer) {
    const auto end = buffer.find("\r\n\r\n");
    if (end == std::string::npos) return 0;
    std::size_t body = 0;
    const auto at = buffer.find("Content-Length:");
    if (at != std::string::npos && at < end)
        body = std::strtoul(buffer.c_str() + at + 15, nullptr, 10);
    const std::size_t total = end + 4 + body;
    return buffer.size() >= total ? total : 0;
}

// Reads what is there; false once the client has closed the connection.
bool serve(int fd, Connection& c) {
    char chunk[65536];
    while (true) {
        const ssize_t n = read(fd, chunk, sizeof chunk);
        if (n == 0) return false;
        if (n < 0) return errno == EAGAIN || errno == EINTR;
        if (c.buffer.empty()) c.first_byte_usec = monoUsec();
        c.buffer.append(chunk, static_cast<std::size_t>(n));
        while (const std::size_t length = requestLength(c.buffer)) {
            const auto space = c.buffer.find(' ');
            const auto path = c.buffer.substr(space + 1, c.buffer.find(' ', space + 1) - space - 1);
            std::printf("%lld %s\n", c.first_byte_usec, path.c_str());
            std::fflush(stdout);
            static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
            if (write(fd, ok, sizeof ok - 1) < 0) return false;
            c.buffer.erase(0, length);
            if (!c.buffer.empty()) c.first_byte_usec = monoUsec();
        }
    }
}

}  // namespace

int main() {
    const int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (listener < 0 || bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 ||
        listen(listener, 64) < 0 ||
        getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) < 0) {
        std::perror("bench_sink");
        return 1;
    }
    std::printf("port %d\n", ntohs(addr.sin_port));
    std::fflush(stdout);

    const int ep = epoll_create1(EPOLL_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = listener;
    epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev);
    ev.data.fd = STDIN_FILENO;
    epoll_ctl(ep, EPOLL_CTL_ADD, STDIN_FILENO, &ev);
    std::map<int, Connection> connections;
    epoll_event events[16];
    while (true) {
        const int n = epoll_wait(ep, events, 16, -1);
        for (int i = 0; i < n; ++i) {
            const int fd = events[i].data.fd;
            if (fd == STDIN_FILENO) return 0;
            if (fd == listener) {
                const int client =
                    accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (client < 0) continue;
                const int one = 1;
                setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                ev.data.fd = client;
                epoll_ctl(ep, EPOLL_CTL_ADD, client, &ev);
                connections[client];
                continue;
            }
            if (!serve(fd, connections[fd])) {
                close(fd);
                connections.erase(fd);
            }
        }
    }
}

// From the crash that crosses a threshold (the Unit PropertiesChanged delta entering
// derivation) to the alert decision, through derivation and the shipped default rules.
// Goal (issue 3): well under 1 ms. Printed as p50/p99 over many alerts.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "ingest/derive.hpp"
#include "rules/evaluator.hpp"
#include "rules/rules.hpp"

using namespace cerberus;

namespace {

constexpr int ALERTS = 2000;

ingest::PropertyDelta state(const char* active, const char* sub, core::Usec mono) {
    ingest::PropertyDelta d;
    d.active_state = active;
    d.sub_state = sub;
    d.state_change_mono = mono;
    return d;
}

}  // namespace

int main() {
    auto loaded = rules::loadRules({CERBERUS_SOURCE_ROOT "/rules/default.json"});
    if (!loaded.ok()) {
        std::fprintf(stderr, "decision: cannot load rules/default.json\n");
        return 1;
    }
    rules::Evaluator evaluator(std::move(loaded.rules));
    const core::SystemClock clock;
    std::vector<double> micros;
    std::vector<rules::AlertChange> out;
    core::Usec mono = 1000;
    core::Usec wall = clock.realtime();
    for (int a = 0; a < ALERTS; ++a) {
        core::UnitSnapshot unit;
        unit.unit = "bench-" + std::to_string(a) + ".service";
        unit.active_state = "active";
        unit.sub_state = "running";
        unit.result = "success";
        unit.n_restarts = 0;
        unit.exec_main_start_mono = mono;
        for (int crash = 1; crash <= 3; ++crash) {
            // Service delta: the run exited 3 (still "active" until the Unit delta).
            ingest::PropertyDelta exited;
            exited.result = "exit-code";
            exited.exec_main_code = 1;
            exited.exec_main_status = 3;
            exited.exec_main_exit_mono = mono += 100000;
            core::UnitSnapshot after = unit;
            ingest::apply(after, exited);
            wall += 100000;
            for (auto& t : ingest::derive(unit, after, {wall, mono, core::Source::Systemd}))
                evaluator.observe(t, t.ts_usec, out);
            unit = after;

            // The Unit delta that says failed: this is where the crash is known.
            const auto begin = std::chrono::steady_clock::now();
            after = unit;
            ingest::apply(after, state("failed", "failed", mono += 10));
            out.clear();
            for (auto& t : ingest::derive(unit, after, {wall, mono, core::Source::Systemd}))
                evaluator.observe(t, t.ts_usec, out);
            const auto end = std::chrono::steady_clock::now();
            unit = after;
            if (crash == 3) {
                if (out.empty() || out.front().kind != rules::ChangeKind::Fire) {
                    std::fprintf(stderr, "decision: the third crash did not fire\n");
                    return 1;
                }
                micros.push_back(std::chrono::duration<double, std::micro>(end - begin).count());
            }
            // Restart and a new short run.
            ingest::PropertyDelta restarted = state("active", "running", mono += 100000);
            restarted.n_restarts = crash;
            restarted.result = "success";
            restarted.exec_main_start_mono = mono;
            restarted.exec_main_exit_mono = 0;
            restarted.invocation_id = std::to_string(a) + "-" + std::to_string(crash);
            after = unit;
            ingest::apply(after, restarted);
            wall += 100000;
            for (auto& t : ingest::derive(unit, after, {wall, mono, core::Source::Systemd}))
                evaluator.observe(t, t.ts_usec, out);
            unit = after;
        }
    }
    std::sort(micros.begin(), micros.end());
    const double p50 = micros[micros.size() / 2];
    const double p99 = micros[micros.size() * 99 / 100];
    std::printf(
        "decision: %zu alerts; crash delta -> derive -> default rules -> Fire: "
        "p50 %.1f us, p99 %.1f us\n",
        micros.size(), p50, p99);
    std::printf("decision: p99 ratio %.4f of the 1 ms limit: %s\n", p99 / 1000.0,
                p99 < 1000.0 ? "met" : "NOT met");
    return 0;
}

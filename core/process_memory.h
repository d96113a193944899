#pragma once
// What this process uses, as the operating system counts it: resident memory and CPU time.
namespace revkit {

// Current resident set size in MiB (Linux: /proc/self/statm; 0 where unavailable).
double current_rss_mb();
// Peak resident set size in MiB since the process started (getrusage).
double peak_rss_mb();
// CPU seconds this process has used since it started, user and system, all threads (getrusage).
double cpu_seconds();

}  // namespace revkit

#pragma once
// Resident memory of this process, as the operating system counts it.
namespace revkit {

// Current resident set size in MiB (Linux: /proc/self/statm; 0 where unavailable).
double current_rss_mb();
// Peak resident set size in MiB since the process started (getrusage).
double peak_rss_mb();

}  // namespace revkit

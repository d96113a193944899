#pragma once
// `revkit train --nproc N`: N copies of this program on this machine, with the environment torchrun would give them
// (engine/distributed.h reads it), and their errors printed once.
#include <string>
#include <vector>

namespace revkit {

// Starts `nproc` copies of this program with `args` (argv[0] excluded) and the environment of a local torchrun,
// waits, and returns the first non-zero exit code (0 when all succeed). When one rank fails the others are stopped;
// a Ctrl-C, SIGTERM or SIGHUP to the launcher goes on to the ranks, and a launcher killed outright takes them along.
// The ranks hand their error lines back (print_error_line) through in-memory files, and each distinct line is
// printed once, the first failing rank's first: every rank finds the same mistake in the same options, and the
// user should read it once.
int launch_local_workers(int nproc, const std::vector<std::string>& args);

// Prints the CLI's error line on stderr; in a rank started by launch_local_workers, hands it to the launcher
// instead (stderr still, when that fails).
void print_error_line(const std::string& text);

// The lines of the ranks' error texts, each distinct line once, in the order first seen.
std::vector<std::string> distinct_error_lines(const std::vector<std::string>& texts);

// A rank's error channel: an in-memory file (memfd) named for revkit, closed on exec; -1 when none can be made.
// Exposed for tests, as is reading one back from its start.
int make_rank_error_channel();
std::string read_rank_error_channel(int fd);

}  // namespace revkit

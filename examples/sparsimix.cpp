// The sparsimix command: one program, one subcommand per pipeline step (docs/cli.md). All of
// it is library code (include/sparsimix/cli/); a program of your own that registers a mixer
// (SPARSIMIX_REGISTER_MIXER) and calls cli::main gets the same command for that mixer too.
#include <sparsimix/cli/main.hpp>

int main(int argc, char** argv) { return sparsimix::cli::main(argc, argv); }

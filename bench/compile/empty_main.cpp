// Compile-time probe: the whole public surface, nothing called.
#include <sparsimix/sparsimix.hpp>

int main() { return 0; }

// ODR test: this TU and odr_b.cpp both include the whole public surface.
#include <cstdio>

#include <sparsimix/sparsimix.hpp>

double odr_b_value();

int main() {
  sparsimix::Tensor<double> t(sparsimix::Shape{4}, 2.0);
  const double a = t(3);
  if (a + odr_b_value() != 5.0) { std::printf("odr mismatch\n"); return 1; }
  std::printf("odr ok\n");
  return 0;
}

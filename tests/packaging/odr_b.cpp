#include <sparsimix/sparsimix.hpp>

double odr_b_value() {
  sparsimix::Tensor<double> t(sparsimix::Shape{2}, 3.0);
  return t(1);
}

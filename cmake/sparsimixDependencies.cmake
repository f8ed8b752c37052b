# Finds sparsimix's dependencies by their installed names. Shared by the build and by the
# installed sparsimixConfig.cmake, so both resolve them the same way.
include(CMakeFindDependencyMacro)
find_dependency(Eigen3 3.4 NO_MODULE)
# Debian's xsimd 8.1 target links a bare `xtl` that no package defines: without a target of
# that name the link fails with "cannot find -lxtl" (TOOLCHAIN.md). xsimd needs no xtl code.
if(NOT TARGET xtl)
  add_library(xtl INTERFACE IMPORTED GLOBAL)
endif()
find_dependency(xsimd 8.1)
find_dependency(nlohmann_json 3.11)
find_dependency(ZLIB)  # data/idx.hpp reads the .gz IDX files directly
find_dependency(JPEG)  # data/image_decode.hpp: libjpeg-turbo, the decoder PIL uses
find_dependency(PNG)   # data/image_decode.hpp: libpng

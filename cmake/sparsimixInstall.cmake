include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(SPARSIMIX_CMAKE_DIR "${CMAKE_INSTALL_DATADIR}/cmake/sparsimix")

install(TARGETS sparsimix EXPORT sparsimixTargets)
install(DIRECTORY include/sparsimix DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT sparsimixTargets NAMESPACE sparsimix:: DESTINATION ${SPARSIMIX_CMAKE_DIR})

configure_package_config_file(cmake/sparsimixConfig.cmake.in
  "${CMAKE_CURRENT_BINARY_DIR}/sparsimixConfig.cmake"
  INSTALL_DESTINATION ${SPARSIMIX_CMAKE_DIR})
# Headers alone fit any architecture; sparsimix::compiled (a static library) does not.
if(SPARSIMIX_BUILD_COMPILED)
  set(_sparsimix_arch_independent "")
else()
  set(_sparsimix_arch_independent ARCH_INDEPENDENT)
endif()
write_basic_package_version_file("${CMAKE_CURRENT_BINARY_DIR}/sparsimixConfigVersion.cmake"
  COMPATIBILITY SameMinorVersion ${_sparsimix_arch_independent})
install(FILES "${CMAKE_CURRENT_BINARY_DIR}/sparsimixConfig.cmake"
              "${CMAKE_CURRENT_BINARY_DIR}/sparsimixConfigVersion.cmake"
              cmake/sparsimixDependencies.cmake
              cmake/sparsimixDispatch.cmake cmake/sparsimixDispatchCheck.cmake
        DESTINATION ${SPARSIMIX_CMAKE_DIR})

# pkg-config: relative to the .pc file so the install stays relocatable.
set(SPARSIMIX_PC_OPENMP "")
if(SPARSIMIX_WITH_OPENMP)
  set(SPARSIMIX_PC_OPENMP " -fopenmp -DSPARSIMIX_USE_OPENMP")
endif()
configure_file(cmake/sparsimix.pc.in "${CMAKE_CURRENT_BINARY_DIR}/sparsimix.pc" @ONLY)
install(FILES "${CMAKE_CURRENT_BINARY_DIR}/sparsimix.pc" DESTINATION ${CMAKE_INSTALL_DATADIR}/pkgconfig)

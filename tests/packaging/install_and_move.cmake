# Installs the build into PREFIX, then copies it to MOVED: consumers use MOVED, so any
# absolute path baked into the installed config would break them.
file(REMOVE_RECURSE "${PREFIX}" "${MOVED}")
execute_process(COMMAND ${CMAKE_COMMAND} --install "${BUILD}" --prefix "${PREFIX}" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cmake --install failed: ${rc}")
endif()
foreach(f share/cmake/sparsimix/sparsimixConfig.cmake share/cmake/sparsimix/sparsimixConfigVersion.cmake
          share/cmake/sparsimix/sparsimixTargets.cmake share/pkgconfig/sparsimix.pc include/sparsimix/sparsimix.hpp)
  if(NOT EXISTS "${PREFIX}/${f}")
    message(FATAL_ERROR "install is missing ${f}")
  endif()
endforeach()
file(COPY "${PREFIX}/" DESTINATION "${MOVED}")
file(REMOVE_RECURSE "${PREFIX}")

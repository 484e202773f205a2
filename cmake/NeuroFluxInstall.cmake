# `cmake --install` puts the library, its headers and an exported NeuroFluxConfig.cmake under the
# prefix, so another project can find_package(NeuroFlux) and link NeuroFlux::neuroflux.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(NEUROFLUX_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/NeuroFlux)

install(TARGETS neuroflux EXPORT NeuroFluxTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS neuroflux_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/neuroflux/include/neuroflux
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT NeuroFluxTargets NAMESPACE NeuroFlux:: DESTINATION ${NEUROFLUX_CMAKE_DIR})

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/NeuroFluxConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/NeuroFluxConfig.cmake
                              INSTALL_DESTINATION ${NEUROFLUX_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/NeuroFluxConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/NeuroFluxConfig.cmake
              ${PROJECT_BINARY_DIR}/NeuroFluxConfigVersion.cmake
        DESTINATION ${NEUROFLUX_CMAKE_DIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/configs DESTINATION ${CMAKE_INSTALL_DATADIR}/neuroflux)

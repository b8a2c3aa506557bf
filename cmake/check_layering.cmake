# Tests that the layering is a build fact (CMakeLists.txt, docs/design.md):
# with the include roots a layer compiles against, every header of its own
# layer and of the layers below it (their folders in src/ and the public
# headers they own) is found, and a header of any layer above it is not.
#
# cmake -DCOMPILER=<c++> -DSOURCE_DIR=<repo> -DBINARY_DIR=<build> -P check_layering.cmake
# (the layer list and each layer's public headers are read from
# ${BINARY_DIR}/layers/<layer>, the roots CMakeLists.txt builds).
set(layers base kernel message com diag remote)
set(work "${BINARY_DIR}/layering_check")
file(REMOVE_RECURSE "${work}")
file(MAKE_DIRECTORY "${work}")

# The headers of each layer, as its users include them.
foreach(layer IN LISTS layers)
  file(GLOB folder RELATIVE "${SOURCE_DIR}/src" "${SOURCE_DIR}/src/${layer}/*.h")
  list(FILTER folder EXCLUDE REGEX "test_util\\.h$")
  file(GLOB public RELATIVE "${BINARY_DIR}/layers/${layer}" "${BINARY_DIR}/layers/${layer}/apartments/*.h")
  set(headers_${layer} ${folder} ${public})
endforeach()

# One translation unit per layer, compiled with that layer's roots, asks
# __has_include of every header of every layer: found at or below, not found
# above. One preprocessor run per layer.
set(failures "")
set(index 0)
foreach(layer IN LISTS layers)
  # The roots of `layer`: its own and those below it.
  set(flags "")
  foreach(below IN LISTS layers)
    list(APPEND flags "-I${BINARY_DIR}/layers/${below}")
    if(below STREQUAL layer)
      break()
    endif()
  endforeach()
  set(content "")
  set(other_index 0)
  foreach(other IN LISTS layers)
    foreach(header IN LISTS headers_${other})
      if(other_index LESS_EQUAL index)
        string(APPEND content "#if !__has_include(\"${header}\")\n"
                              "#error \"${layer} cannot include ${header} (${other}, at or below it)\"\n#endif\n")
      else()
        string(APPEND content "#if __has_include(\"${header}\")\n"
                              "#error \"${layer} can include ${header} (${other}, above it)\"\n#endif\n")
      endif()
    endforeach()
    math(EXPR other_index "${other_index} + 1")
  endforeach()
  set(tu "${work}/${layer}.cc")
  file(WRITE "${tu}" "${content}")
  execute_process(COMMAND ${COMPILER} -std=c++20 -E ${flags} "${tu}" -o /dev/null
                  RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    list(APPEND failures "${err}")
  endif()
  math(EXPR index "${index} + 1")
endforeach()

if(failures)
  string(JOIN "\n" text ${failures})
  message(FATAL_ERROR "${text}")
endif()
message(STATUS "layering: every layer sees its own and lower layers' headers and none above")

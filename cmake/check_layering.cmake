# Tests that the layering is a build fact (CMakeLists.txt, docs/design.md):
# with the include roots a layer compiles against, every header of its own
# layer and of the layers below it (their folders in src/ and the public
# headers they own) is found, and a header of any layer above it is not.
#
# cmake -DCOMPILER=<c++> -DSOURCE_DIR=<repo> -DBINARY_DIR=<build> -P check_layering.cmake
# (the layer list and each layer's public headers are read from
# ${BINARY_DIR}/layers/<layer>, the roots CMakeLists.txt builds).
set(layers base kernel message com diag)
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
  set(other_index 0)
  foreach(other IN LISTS layers)
    if(other_index LESS_EQUAL index)
      # Every header of a layer at or below: one translation unit, found.
      set(tu "${work}/${layer}_sees_${other}.cc")
      set(content "")
      foreach(header IN LISTS headers_${other})
        string(APPEND content "#include \"${header}\"\n")
      endforeach()
      file(WRITE "${tu}" "${content}")
      execute_process(COMMAND ${COMPILER} -std=c++20 -E ${flags} "${tu}" -o /dev/null
                      RESULT_VARIABLE rc ERROR_VARIABLE err)
      if(NOT rc EQUAL 0)
        list(APPEND failures "${layer} cannot include a header of ${other} (below it):\n${err}")
      endif()
    else()
      # Any header of a layer above, one at a time: not found.
      foreach(header IN LISTS headers_${other})
        string(MAKE_C_IDENTIFIER "${header}" id)
        set(tu "${work}/${layer}_includes_${id}.cc")
        file(WRITE "${tu}" "#include \"${header}\"\n")
        execute_process(COMMAND ${COMPILER} -std=c++20 -E ${flags} "${tu}" -o /dev/null
                        RESULT_VARIABLE rc ERROR_VARIABLE err)
        if(rc EQUAL 0 OR NOT err MATCHES "No such file")
          list(APPEND failures "${layer} includes \"${header}\" of ${other} (above it), and the build lets it")
        endif()
      endforeach()
    endif()
    math(EXPR other_index "${other_index} + 1")
  endforeach()
  math(EXPR index "${index} + 1")
endforeach()

if(failures)
  string(JOIN "\n" text ${failures})
  message(FATAL_ERROR "${text}")
endif()
message(STATUS "layering: every layer sees its own and lower layers' headers and none above")

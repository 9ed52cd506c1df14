# cmake -DBUILD_DIR=... -DEXAMPLE_DIR=... -DWORK_DIR=... -DSHARED_DIR=... -DGENERATOR=...
#       -DCXX=... -P install_example.cmake
# Installs the build into WORK_DIR/prefix, builds examples/generate against it with
# find_package(qkv) and, when SHARED_DIR has stories260K, checks the story it prints.
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(out "${out}" PARENT_SCOPE)
  set(err "${err}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)
run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
foreach(f include/qkv/session.h include/qkv/model.h)
  if(NOT EXISTS ${prefix}/${f})
    message(FATAL_ERROR "${f} was not installed")
  endif()
endforeach()
run(${CMAKE_COMMAND} -S ${EXAMPLE_DIR} -B ${WORK_DIR}/build -G ${GENERATOR}
    -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH=${prefix})
run(${CMAKE_COMMAND} --build ${WORK_DIR}/build)

set(model ${SHARED_DIR}/models/stories260K/stories260K.bin)
set(ref ${SHARED_DIR}/models/stories260K/reference.json)
if(NOT EXISTS ${model} OR NOT EXISTS ${ref})
  if(NOT "$ENV{QKV_REQUIRE_SHARED}" STREQUAL "" AND NOT "$ENV{QKV_REQUIRE_SHARED}" STREQUAL "0")
    message(FATAL_ERROR "${model} or ${ref} is absent and QKV_REQUIRE_SHARED is set")
  endif()
  message(STATUS "example built; not run: ${model} is absent")
  return()
endif()
# 196 greedy tokens after "Once upon a time": run.c's -n 200 story (reference.json, case 0).
run(${WORK_DIR}/build/generate ${model} "Once upon a time"
    ${SHARED_DIR}/models/stories260K/tok512.bin 196)
file(READ ${ref} json)
string(JSON want GET "${json}" cases 0 run_c_stdout)
if(NOT out STREQUAL "${want}\n")
  message(FATAL_ERROR "example printed\n${out}\nexpected\n${want}")
endif()
message(STATUS "example output matches run.c: ${err}")

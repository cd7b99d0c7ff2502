# cmake -DBIN=<program> -DARGS=<one argument> -DEXPECT=<text> -P expect_failure.cmake
# Passes when the program exits non-zero AND its output contains EXPECT: a test that must fail
# for the stated reason (ctest's WILL_FAIL would also accept a crash or any other failure).
execute_process(COMMAND ${BIN} ${ARGS} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(rc EQUAL 0)
  message(FATAL_ERROR "expected ${BIN} ${ARGS} to fail, but it exited 0:\n${out}")
endif()
string(FIND "${out}" "${EXPECT}" at)
if(at EQUAL -1)
  message(FATAL_ERROR "${BIN} ${ARGS} failed (${rc}) but its output lacks '${EXPECT}':\n${out}")
endif()
message(STATUS "failed as expected (exit ${rc}): ${EXPECT}")

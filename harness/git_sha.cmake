# Writes OUT from IN with CHELA_GIT_SHA = FORCED, or `git describe` of SRC, or
# "unknown"; rewrites OUT only when it changes, so builds stay incremental.
if(FORCED)
  set(CHELA_GIT_SHA "${FORCED}")
else()
  execute_process(COMMAND git -C "${SRC}" describe --always --dirty --abbrev=12
                  OUTPUT_VARIABLE CHELA_GIT_SHA OUTPUT_STRIP_TRAILING_WHITESPACE
                  ERROR_QUIET RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0 OR CHELA_GIT_SHA STREQUAL "")
    set(CHELA_GIT_SHA "unknown")
  endif()
endif()
configure_file("${IN}" "${OUT}.new" @ONLY)
file(COPY_FILE "${OUT}.new" "${OUT}" ONLY_IF_DIFFERENT)

# The parity matrix against the Python libraries users come from (ctest label `reference`). For each area a
# Python script (tests/reference/<script>) does only what the library does: it reads files qtune wrote or writes
# files qtune reads, and saves what the library computed under ${QTUNE_REFERENCE_DIR}/<area>. The C++ suites of
# qtune_reference_tests then compare; without those outputs they fail under QTUNE_REQUIRE_REFERENCE=1, else skip.
file(GLOB qtune_reference_sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/reference/*.cpp)
add_executable(qtune_reference_tests support/test_support.cpp ${qtune_reference_sources})
target_link_libraries(qtune_reference_tests PRIVATE qtune_lib qtune_test_files GTest::gtest_main)
target_precompile_headers(qtune_reference_tests REUSE_FROM qtune_models)
add_dependencies(qtune_reference_tests qtune)  # the Python side runs the binary to make qtune's files

# qtune_reference(AREA <name> SCRIPT <file.py> SUITES <gtest filter> [REQUIRES <area>...] [ARGS ...]):
# ctest Reference.<name> runs the script with --qtune and --out ${QTUNE_REFERENCE_DIR}/<name>; the C++ tests the
# filter selects run after it (and after the areas it REQUIRES, whose outputs the script reads).
function(qtune_reference)
  cmake_parse_arguments(R "" "AREA;SCRIPT;SUITES" "REQUIRES;ARGS" ${ARGN})
  add_test(NAME Reference.${R_AREA}
           COMMAND ${QTUNE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/reference/${R_SCRIPT} --qtune $<TARGET_FILE:qtune>
                   --out ${QTUNE_REFERENCE_DIR}/${R_AREA} ${R_ARGS})
  set(required "")
  foreach(area IN LISTS R_REQUIRES)
    list(APPEND required reference_${area})
  endforeach()
  set_tests_properties(Reference.${R_AREA} PROPERTIES FIXTURES_SETUP reference_${R_AREA} FIXTURES_REQUIRED "${required}"
                       LABELS reference ENVIRONMENT "${qtune_python_env}")
  gtest_discover_tests(qtune_reference_tests DISCOVERY_TIMEOUT 120 TEST_FILTER "${R_SUITES}"
                       PROPERTIES LABELS reference FIXTURES_REQUIRED reference_${R_AREA})
endfunction()

qtune_reference(AREA models SCRIPT hf_models.py SUITES "TransformersModel.*")
qtune_reference(AREA lora SCRIPT peft_lora.py SUITES "PeftLora.*" REQUIRES models ARGS --models ${QTUNE_REFERENCE_DIR}/models)
qtune_reference(AREA lora_variants SCRIPT peft_variants.py SUITES "PeftVariants.*" REQUIRES models ARGS --models ${QTUNE_REFERENCE_DIR}/models)
qtune_reference(AREA bnb SCRIPT bnb_4bit.py SUITES "Bnb4bitReference.*")
qtune_reference(AREA trl SCRIPT trl_objectives.py SUITES "TrlObjectives.*")
qtune_reference(AREA loraplus SCRIPT peft_loraplus.py SUITES "LoraPlusReference.*")
qtune_reference(AREA gguf_quants SCRIPT gguf_quants.py SUITES "GgufQuantsReference.*")
qtune_reference(AREA gguf_export SCRIPT gguf_export.py SUITES "GgufExportReference.*" REQUIRES models ARGS --models ${QTUNE_REFERENCE_DIR}/models)
qtune_reference(AREA eval SCRIPT eval_perplexity.py SUITES "EvalReference.*" REQUIRES models ARGS --models ${QTUNE_REFERENCE_DIR}/models)
qtune_reference(AREA gguf_tokenizer SCRIPT gguf_tokenizer.py SUITES "GgufTokenizerReference.*")

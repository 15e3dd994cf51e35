/* test_list.h - every C unit test, in the order they run. */
#define TEST_LIST(X)                                                                               \
  X(buf_append_and_take)                                                                           \
  X(buf_json_string_escapes)                                                                       \
  X(error_format_and_prefix)                                                                       \
  X(routes_match_params_and_slash)                                                                 \
  X(routes_method_not_allowed)                                                                     \
  X(routes_not_found)                                                                              \
  X(config_env_then_flags)                                                                         \
  X(config_rejects_bad_values)                                                                     \
  X(gen_loads_modules_and_hashes)                                                                  \
  X(gen_publish_and_refcount)                                                                      \
  X(lua_sandbox_allows_the_basics)                                                                 \
  X(lua_sandbox_hides_dangerous_globals)                                                           \
  X(lua_error_has_file_line_traceback)                                                             \
  X(lua_time_budget_cannot_be_swallowed)                                                           \
  X(lua_memory_cap)                                                                                \
  X(lua_json_round_trip_in_host)                                                                   \
  X(lua_require_stays_inside_generation)                                                           \
  X(lua_db_unavailable_while_loading)                                                              \
  X(lua_finalize_reports_each_message)                                                             \
  X(lua_invoke_json_in_and_out)                                                                    \
  X(ws_accept_key)                                                                                 \
  X(ws_parse_masked_frame)                                                                         \
  X(ws_parse_extended_lengths)                                                                     \
  X(ws_parse_rejects_violations)                                                                   \
  X(ws_encode_frames)                                                                              \
  X(ws_utf8_validation)                                                                            \
  X(ws_server_pong_broadcast_close)                                                                \
  X(events_validate)                                                                               \
  X(events_batch_dedup_and_overflow)                                                               \
  X(guard_origins)                                                                                 \
  X(guard_json_media_types)                                                                        \
  X(guard_masks_tokens)                                                                            \
  X(auth_settings_and_files)

// not_a_plugin: a shared library without reel_plugin_entry; the host must refuse it.
extern "C" __attribute__((visibility("default"))) int reel_not_a_plugin_answer() { return 42; }

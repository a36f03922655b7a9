/* reel plugin ABI, version 1: the only contract between reel and a model plugin.
 *
 * A plugin is a shared library exporting one C symbol, `reel_plugin_entry`, that
 * returns a descriptor table. Everything crossing the boundary is plain C: integers,
 * NUL-terminated UTF-8 strings, and JSON documents carried in strings (their schemas
 * are in docs/PLUGINS.md). No C++ type, exception or allocator crosses it, so host and
 * plugin may be built with different compilers and standard libraries.
 *
 * Memory: a string a plugin returns through a `char**` out-parameter is allocated by
 * the plugin and released by the host with the table's `free_string`. Strings the host
 * passes in are valid only for the duration of the call.
 * Threads: the host calls a plugin from one thread at a time; host callbacks may be
 * called from any one plugin thread during `run`.
 * Versioning: the host passes its ABI version to the entry function; a plugin built
 * for another major version returns a table whose `abi_version` says so and is refused.
 *
 * Writing a plugin in C++? Use reel_plugin.hpp: one class, no glue. */
#ifndef REEL_PLUGIN_H
#define REEL_PLUGIN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define REEL_PLUGIN_ABI_VERSION 1u
#define REEL_PLUGIN_ENTRY_SYMBOL "reel_plugin_entry"

/* Status codes: every call returns one. Anything but REEL_OK comes with a message. */
typedef enum reel_status {
  REEL_OK = 0,
  REEL_ERR_OOM = 1,             /* out of GPU or host memory: the host retries one rung lower */
  REEL_ERR_BAD_INPUT = 2,       /* the job itself is wrong (params, inputs): never retried */
  REEL_ERR_MISSING_WEIGHTS = 3, /* checkpoint files absent or corrupt: never retried */
  REEL_ERR_INTERNAL = 4,        /* anything else: retried while attempts remain */
  REEL_ERR_CANCELLED = 5        /* the host asked to cancel and the plugin stopped */
} reel_status;

/* Log levels for reel_host_api.log. */
enum { REEL_LOG_DEBUG = 0, REEL_LOG_INFO = 1, REEL_LOG_WARN = 2, REEL_LOG_ERROR = 3 };

/* What the host offers a running job. `ctx` is passed back unchanged. */
typedef struct reel_host_api {
  void* ctx;
  /* Progress within a stage ("encode", "denoise", "decode", ...). */
  void (*progress)(void* ctx, int64_t step, int64_t total, const char* stage);
  /* Non-zero once the job should stop; poll between steps. */
  int (*cancelled)(void* ctx);
  void (*log)(void* ctx, int level, const char* message);
  /* Peak memory the plugin observed so far (bytes; 0 = unknown), e.g. from the CUDA
   * caching allocator. The host also samples the worker's RSS itself. */
  void (*memory_sample)(void* ctx, uint64_t device_bytes, uint64_t host_bytes);
  /* A structured event for the job's log: kind "checkpoint", "warning", ...; data is JSON. */
  void (*event)(void* ctx, const char* kind, const char* data_json);
} reel_host_api;

typedef struct reel_plugin {
  /* REEL_PLUGIN_ABI_VERSION the plugin was built against. Stays the first member in
   * every version: it is the only field a host reads before accepting the table. */
  uint32_t abi_version;
  const char* name;           /* e.g. "wan" */
  const char* version;        /* the plugin's own version, e.g. "0.1.0" */
  void* self;                 /* the plugin's state, passed to every call */

  /* {"models": [model description, ...]} (docs/PLUGINS.md); on failure {"message"}. */
  reel_status (*describe)(void* self, char** out_json);

  /* Memory and time of one job at one rung: in `job_json` (id, model, params, inputs),
   * `rung_json` (one entry of the model's ladder); out {"device_bytes", "host_bytes",
   * "resident_device_bytes", "resident_host_bytes", "relative_time", "cpu_only",
   * "effective": {...steps/frames/width/height/precision}}; on failure {"message"}.
   * Must be cheap and must not touch a GPU: the host calls it to plan. */
  reel_status (*estimate)(void* self, const char* job_json, const char* rung_json, char** out_json);

  /* Loads `model` with the placement of `rung_json` on `device` ("cpu", "cuda:0", ...).
   * On success *model_handle is the plugin's handle for run/unload. On failure
   * *out_json holds {"message": "..."}. */
  reel_status (*load)(void* self, const char* model, const char* rung_json, const char* device,
                      void** model_handle, char** out_json);

  /* Runs one job with a loaded model. `work_dir` persists across attempts of the same
   * job: stage checkpoints written there let a retry at a lower rung skip finished
   * stages. `output_dir` receives the outputs. On success *out_json is
   * {"outputs": ["/abs/path", ...], "info": {...}}; on failure {"message": "..."}. */
  reel_status (*run)(void* self, void* model_handle, const char* job_json, const char* rung_json,
                     const char* work_dir, const char* output_dir, const reel_host_api* host,
                     char** out_json);

  /* Frees everything `load` allocated. unload, free_string and destroy cannot fail. */
  void (*unload)(void* self, void* model_handle);
  void (*free_string)(void* self, char* s);
  /* Called once before dlclose. */
  void (*destroy)(void* self);
} reel_plugin;

/* The one exported symbol. `host_abi_version` lets a plugin serve several versions. */
typedef const reel_plugin* (*reel_plugin_entry_fn)(uint32_t host_abi_version);

#ifdef __cplusplus
}
#endif

#endif /* REEL_PLUGIN_H */

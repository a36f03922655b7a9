#include "store/job_store.hpp"

namespace reel {

const char* to_string(StoreError::Code c) {
  switch (c) {
    case StoreError::Code::not_found: return "not_found";
    case StoreError::Code::conflict: return "conflict";
    case StoreError::Code::invalid_state: return "invalid_state";
    case StoreError::Code::lease_mismatch: return "lease_mismatch";
    case StoreError::Code::queue_full: return "queue_full";
    case StoreError::Code::storage: return "storage";
    case StoreError::Code::disk_full: return "disk_full";
    case StoreError::Code::read_only: return "read_only";
  }
  return "unknown";
}

bool is_storage_failure(StoreError::Code c) {
  return c == StoreError::Code::storage || c == StoreError::Code::disk_full || c == StoreError::Code::read_only;
}

}  // namespace reel

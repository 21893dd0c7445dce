// SPDX-License-Identifier: GPL-2.0-only
// The records of bpf/intf.h as the extension sees them, and the one decoder and
// encoder of their bytes. The scheduler's ring buffer callback and the tests' replay
// helpers both go through these functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

extern "C" {
#include "intf.h"
}

namespace pyland {

using QueuedTask = ::queued_task;
using DispatchedTask = ::dispatched_task;

// Decode one queued_task record; false if it has the wrong size.
inline bool decode_queued(std::span<const std::byte> bytes, QueuedTask &out) {
    if (bytes.size() != sizeof(QueuedTask))
        return false;
    std::memcpy(&out, bytes.data(), sizeof(QueuedTask));
    return true;
}

// Decode a buffer of back-to-back queued_task records.
// Throws std::invalid_argument if its length is not a whole number of records.
std::vector<QueuedTask> decode_queued_records(std::span<const std::byte> bytes);

// Encode records back to back, in the intf.h layout.
std::string encode_dispatched_records(std::span<const DispatchedTask> tasks);
std::string encode_queued_records(std::span<const QueuedTask> tasks);

// A task's command name, up to its NUL.
inline std::string comm_of(const QueuedTask &task) {
    return std::string(task.comm, strnlen(task.comm, sizeof(task.comm)));
}

}  // namespace pyland

// SPDX-License-Identifier: GPL-2.0-only
#include "records.hpp"

#include <stdexcept>

namespace pyland {

std::vector<QueuedTask> decode_queued_records(std::span<const std::byte> bytes) {
    if (bytes.size() % sizeof(QueuedTask) != 0)
        throw std::invalid_argument("queued records: " + std::to_string(bytes.size()) +
                                    " bytes is not a multiple of the record size " +
                                    std::to_string(sizeof(QueuedTask)));
    std::vector<QueuedTask> tasks(bytes.size() / sizeof(QueuedTask));
    for (size_t i = 0; i < tasks.size(); i++)
        decode_queued(bytes.subspan(i * sizeof(QueuedTask), sizeof(QueuedTask)), tasks[i]);
    return tasks;
}

std::string encode_dispatched_records(std::span<const DispatchedTask> tasks) {
    std::string out(tasks.size_bytes(), '\0');
    std::memcpy(out.data(), tasks.data(), tasks.size_bytes());
    return out;
}

std::string encode_queued_records(std::span<const QueuedTask> tasks) {
    std::string out(tasks.size_bytes(), '\0');
    std::memcpy(out.data(), tasks.data(), tasks.size_bytes());
    return out;
}

}  // namespace pyland

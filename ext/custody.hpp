// SPDX-License-Identifier: GPL-2.0-only
//
// Custody: the tasks the worker handed to the policy and has not yet seen decided.
//
//   custody.receive(task, now_ns);     // after each dequeue: the policy holds it now
//   custody.release(decision);         // each decision the policy returns: Released,
//                                      // Stale (an older generation) or Invalid
//   custody.take_overdue(cutoff, out); // once a tick: what was held since before cutoff
//   custody.held(out);                 // everything held, oldest first (policy swaps)
//
// One open-addressing table keyed by pid (linear probing, backward-shift deletion),
// so receiving and releasing a task allocates nothing; it grows (doubles) only when
// more than half full. A task is held once: a newer record of it (a higher enq_cnt:
// it was dequeued and queued again meanwhile) replaces the older one and keeps the
// older one's time, since the task has been waiting since then.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "records.hpp"

namespace pyland {

class Custody {
public:
    enum class Verdict {
        Released,  // the generation held: the task is no longer the policy's
        Stale,     // an older generation of a task held: the BPF side cancels it
        Invalid,   // a task not held (never given, already decided) or a generation never given
    };

    explicit Custody(size_t capacity = 1024);

    void receive(const QueuedTask &task, uint64_t now_ns);
    Verdict release(const DispatchedTask &decision);
    // Remove every task held since `cutoff_ns` or before and append it to `out`, oldest first.
    void take_overdue(uint64_t cutoff_ns, std::vector<QueuedTask> &out);
    // Append every task held to `out`, oldest first; nothing is removed.
    void held(std::vector<QueuedTask> &out) const;
    size_t size() const { return size_; }
    void clear();

private:
    struct Slot {
        QueuedTask task;
        uint64_t since_ns;
        uint64_t seq;  // order of arrival, for ties in since_ns
        bool used;
    };

    size_t index_of(int32_t pid) const;  // the slot of pid, or the empty slot where it would go
    void erase_at(size_t i);
    void grow();
    void sorted_indices(std::vector<size_t> &out, uint64_t cutoff_ns) const;

    std::vector<Slot> slots_;
    size_t mask_ = 0;
    size_t size_ = 0;
    uint64_t seq_ = 0;
};

}  // namespace pyland

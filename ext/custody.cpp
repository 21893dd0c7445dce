// SPDX-License-Identifier: GPL-2.0-only
#include "custody.hpp"

#include <algorithm>
#include <bit>

namespace pyland {

namespace {

size_t hash_pid(int32_t pid) {
    // Fibonacci hashing: consecutive pids spread over the table.
    return static_cast<size_t>(static_cast<uint32_t>(pid) * 0x9E3779B1u);
}

}  // namespace

Custody::Custody(size_t capacity) {
    size_t n = std::bit_ceil(std::max<size_t>(capacity, 16));
    slots_.assign(n, Slot{});
    mask_ = n - 1;
}

size_t Custody::index_of(int32_t pid) const {
    size_t i = hash_pid(pid) & mask_;
    while (slots_[i].used && slots_[i].task.pid != pid)
        i = (i + 1) & mask_;
    return i;
}

void Custody::receive(const QueuedTask &task, uint64_t now_ns) {
    size_t i = index_of(task.pid);
    Slot &slot = slots_[i];
    if (slot.used) {
        // Queued again while held: the newer record (the ring delivers them in
        // order) is the one that counts; the task has waited since the older one
        // arrived. A lower enq_cnt is a new task with the pid of one that exited
        // while held: its record counts too.
        slot.task = task;
        return;
    }
    slot = Slot{task, now_ns, seq_++, true};
    if (++size_ * 2 > slots_.size())
        grow();
}

Custody::Verdict Custody::release(const DispatchedTask &decision) {
    size_t i = index_of(decision.pid);
    if (!slots_[i].used)
        return Verdict::Invalid;
    uint64_t held = slots_[i].task.enq_cnt;
    if (decision.enq_cnt < held)
        return Verdict::Stale;
    if (decision.enq_cnt > held)
        return Verdict::Invalid;
    erase_at(i);
    return Verdict::Released;
}

void Custody::erase_at(size_t i) {
    // Backward-shift deletion: move later entries of the probe run into the hole,
    // so lookups never need tombstones.
    slots_[i].used = false;
    size_--;
    size_t hole = i;
    for (size_t j = (i + 1) & mask_; slots_[j].used; j = (j + 1) & mask_) {
        size_t home = hash_pid(slots_[j].task.pid) & mask_;
        // Move j into the hole if its home is not in (hole, j] (cyclically).
        bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
        if (!stays) {
            slots_[hole] = slots_[j];
            slots_[j].used = false;
            hole = j;
        }
    }
}

void Custody::grow() {
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(old.size() * 2, Slot{});
    mask_ = slots_.size() - 1;
    for (const Slot &slot : old)
        if (slot.used)
            slots_[index_of(slot.task.pid)] = slot;
}

void Custody::sorted_indices(std::vector<size_t> &out, uint64_t cutoff_ns) const {
    for (size_t i = 0; i < slots_.size(); i++)
        if (slots_[i].used && slots_[i].since_ns <= cutoff_ns)
            out.push_back(i);
    std::sort(out.begin(), out.end(), [this](size_t a, size_t b) {
        return slots_[a].since_ns != slots_[b].since_ns ? slots_[a].since_ns < slots_[b].since_ns
                                                        : slots_[a].seq < slots_[b].seq;
    });
}

void Custody::take_overdue(uint64_t cutoff_ns, std::vector<QueuedTask> &out) {
    std::vector<size_t> found;
    sorted_indices(found, cutoff_ns);
    if (found.empty())
        return;
    size_t first = out.size();
    for (size_t i : found)
        out.push_back(slots_[i].task);
    // Erase by pid: each erase may shift the slots of the others.
    for (size_t k = first; k < out.size(); k++)
        erase_at(index_of(out[k].pid));
}

void Custody::held(std::vector<QueuedTask> &out) const {
    std::vector<size_t> found;
    sorted_indices(found, UINT64_MAX);
    for (size_t i : found)
        out.push_back(slots_[i].task);
}

void Custody::clear() {
    for (Slot &slot : slots_)
        slot.used = false;
    size_ = 0;
}

}  // namespace pyland

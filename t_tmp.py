import timeit
from scx_pyland import _bpf
from scx_pyland.records import queued_bytes
c = _bpf.Custody()
q = _bpf.decode_queued(queued_bytes(5, enq_cnt=1))
d = [_bpf.DispatchedTask(5, enq_cnt=1)]
r, rl = c.receive, c.release
n=200000
for _ in range(3):
    t = timeit.timeit(lambda: (r(q), rl(d)), number=n)/n*1e9
    t0 = timeit.timeit(lambda: None, number=n)/n*1e9
    t1 = timeit.timeit(lambda: r(q), number=n)/n*1e9
    c.clear()
    t2 = timeit.timeit(lambda: rl(d), number=n)/n*1e9
    t3 = timeit.timeit(lambda: len(q), number=n)/n*1e9
    print(f"pair {t:.0f} ns, empty {t0:.0f}, receive {t1:.0f}, release(miss) {t2:.0f}, len {t3:.0f}")

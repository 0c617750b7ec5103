"""What the PyTorch peer scripts (tools/peer_torch_*.py) share: CUDA-event timing and peak
extra device memory. Imported from the scripts' own directory."""
import statistics

import torch


def timed(fn, repeats):
    """Median milliseconds of fn() over `repeats` runs after one warm-up (and autotuning)."""
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start.record()
        fn()
        stop.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


def measure(step, repeats):
    """(median ms, peak device memory in GiB above what was allocated before) of step()."""
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    ms = timed(step, repeats)
    return ms, (torch.cuda.max_memory_allocated() - base) / 2 ** 30

"""Within ``reused_heap`` the large blocks a training step frees are reused by the next step instead
of being mapped and zeroed afresh by the kernel (glibc only)."""

from __future__ import annotations

import platform
import resource

import pytest
import torch

from training.heap import reused_heap

BLOCKS_MB = (48, 48, 24, 24, 96)  # feature maps and their gradients, as a step allocates them
PAGES_PER_STEP = sum(BLOCKS_MB) * 2**20 // resource.getpagesize()


def page_faults_of_steps(steps: int) -> int:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(steps):
        blocks = [torch.ones(mb * 2**20 // 4) for mb in BLOCKS_MB]  # every page written
        del blocks
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator only")
def test_freed_large_blocks_are_reused_by_the_next_step():
    with reused_heap() as kept:
        assert kept
        page_faults_of_steps(3)  # the heap grows to the working set
        faults = page_faults_of_steps(5)
    assert faults < 0.25 * 5 * PAGES_PER_STEP  # without it every page of every block faults again


def resident_mb() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() // 2**20


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator only")
def test_the_kept_memory_goes_back_to_the_system_after_the_block():
    with reused_heap():
        page_faults_of_steps(2)
        kept = resident_mb()
    assert resident_mb() < kept - sum(BLOCKS_MB) // 2  # the freed blocks are no longer resident

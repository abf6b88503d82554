"""Freed memory kept for reuse (pipeline/allocator.py): a large block freed and asked for again is
served from the pages the process already has, not faulted in anew. Each case runs in a fresh
interpreter, as the entry points set it at their start."""

import subprocess
import sys
import textwrap

import pytest

# Allocates, writes and frees 64 MB four times with the C library's malloc; prints the page faults
# of the rounds after the first (which faults the pages in once in any case).
ROUNDS = textwrap.dedent("""
    import ctypes, resource, sys
    from pipeline.allocator import keep_freed_memory

    if sys.argv[1] == "kept":
        print(keep_freed_memory())
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes, libc.memset.argtypes = [ctypes.c_void_p], [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    size, faults = 64 << 20, []
    for _ in range(4):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        block = libc.malloc(size)
        libc.memset(block, 1, size)
        libc.free(block)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    print(sum(faults[1:]))
""")


GLIBC = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc settings")


def page_faults(mode: str, **env) -> list[str]:
    done = subprocess.run([sys.executable, "-c", ROUNDS, mode], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", **env})
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


@GLIBC
def test_a_freed_large_block_is_reused_without_faulting_its_pages_in_again():
    pages = (64 << 20) // 4096
    (as_glibc_comes,) = page_faults("default")
    assert int(as_glibc_comes) >= 3 * pages * 0.9  # each round's block came fresh from the system
    taken, kept = page_faults("kept")
    assert taken == "True"
    assert int(kept) < pages * 0.1


@GLIBC
def test_the_users_own_malloc_settings_are_left_as_they_are():
    taken, faults = page_faults("kept", MALLOC_TRIM_THRESHOLD_="131072")
    assert taken == "False"
    assert int(faults) >= 3 * (64 << 20) // 4096 * 0.9  # glibc's way, with the user's threshold

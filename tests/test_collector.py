"""The garbage collector run less often (pipeline/collector.py): set by the entry points before their
imports, never lowered or turned back on, and cyclic garbage still collected without being asked.
Each case runs in a fresh interpreter, whose collector starts with Python's own thresholds."""

import subprocess
import sys
import textwrap

from pipeline.collector import THRESHOLDS

CASES = textwrap.dedent("""
    import gc, sys, weakref
    from pipeline.collector import THRESHOLDS, collect_less_often

    case = sys.argv[1]
    if case == "stage":  # what a stage's main finds
        from pipeline.cli import run_script
        run_script(lambda: print(gc.get_threshold()))
    if case == "higher":
        gc.set_threshold(100_000, 5, 500)
    if case == "off":
        gc.set_threshold(0)
    if case == "cycle":
        class Node:
            pass
        node = Node()
        node.self = node  # a cycle: reference counting alone never frees it
        gone = weakref.ref(node)
        collect_less_often()
        del node
        kept = [[] for _ in range(3 * THRESHOLDS[0])]  # allocations, and no gc.collect()
        print(gone() is None)
    else:
        collect_less_often()
        print(gc.get_threshold())
""")


def run(case: str) -> str:
    done = subprocess.run([sys.executable, "-c", CASES, case], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_stage_runs_with_the_raised_thresholds():
    assert run("stage") == str(THRESHOLDS)


def test_a_higher_threshold_stays_and_a_collector_turned_off_stays_off():
    assert run("higher") == str((100_000, 20, 500))
    assert run("off") == str((0, 10, 10))


def test_cyclic_garbage_is_still_collected_as_objects_are_allocated():
    assert run("cycle") == "True"
